"""The distributor Lambda: validate, de-duplicate, route and forward master-queue batches.

Handler: ``orchestrator.distributor.handler.lambda_handler``. The composition root is
`orchestrator.distributor.handler.build_distributor`.
"""
