"""One-command multi-region deployment of the inference orchestrator.

``orchestrator deploy --env dev --primary-region us-east-1 --regions us-west-2,us-west-1``

1. deploys ``infrastructure/region.yaml`` as a CloudFormation stack in every other region
   (in parallel, one boto3 client per region) and reads each stack's queue URL and ARN;
2. runs ``sam build`` and ``sam deploy`` of ``infrastructure/template.yaml`` in the primary
   region with those queues as ``RemoteRegionQueues`` / ``RemoteRegionQueueArns``;
3. prints the queue URLs the distributor now routes to;
4. with ``--worker-image``, writes every region's GPU worker manifests (``infrastructure/k8s``
   filled in with that region's stack outputs) to ``build/k8s/<region>/`` and validates them
   offline (`orchestrator.deploy.schemas`). ``--manifests-only`` does step 4 alone.

This replaces the published system's manual steps (``aws sqs create-queue`` per region, then
hand-editing the Lambda's ``REGION_QUEUES`` and IAM policy). The CloudFormation part takes
injected clients and the SAM part an injected command runner, so both are tested offline.
"""
