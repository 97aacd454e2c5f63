"""Create, in the local endpoint, the resources the templates declare, and describe them.

`create_stack(sqs_clients, dynamodb, spec, s3=..., sns=...)` makes the master queue and its
dead-letter queue, the request table and the workers' presence table (key schema, TTL), the
inference queues of each region (standard, high-priority, and their dead-letter queue) and one
results bucket per region, each with the attributes and redrive policy the templates give it;
and, for the clients' side, a callback SNS topic with an SQS queue subscribed to it (the
templates leave topics to the clients: the worker may publish to ``inference-callback-*``).
The result, `StackResources`, knows the URLs, ARNs and names and produces the distributor's,
the rescue function's and a worker's environment; what other processes are told about it is
an `orchestrator.core.stackfile.LocalStack` (`advertised`), the one description of a local
stack, written by `localrun.stackfile`. The stack file's format has no high-priority queues;
a process that reads it finds them by name (`from_local_stack`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localrun.cfn import ACCOUNT_ID
from localrun.server import FAKE_CREDENTIALS
from localrun.templates import BucketSpec, QueueSpec, StackSpec, TableSpec
from orchestrator.core.stackfile import LocalStack

HIGH_LANE = " high"
"""A region's high-priority queue is shown as ``<region> high`` (tables, depths, reports)."""

CALLBACK_TOPIC = "inference-callback-local"
"""A client's topic, named as the worker's IAM policy allows by default (inference-callback-*)."""


@dataclass(frozen=True)
class StackResources:
    """The resources a local stack is made of, with the template specs they came from."""

    endpoint_url: str
    primary_region: str
    master_queue_url: str
    master_queue_arn: str
    dead_letter_queue_url: str
    table_name: str
    region_queues: Mapping[str, str]
    spec: StackSpec
    region_dead_letter_queues: Mapping[str, str] = field(default_factory=dict)
    workers_table: str | None = None
    results_buckets: Mapping[str, str] = field(default_factory=dict)
    """Bucket name per region."""
    callback_topic_arn: str | None = None
    notification_queue_url: str | None = None
    """The primary-region queue subscribed to `callback_topic_arn`."""
    high_priority_queues: Mapping[str, str] = field(default_factory=dict)
    """Each region's high-priority queue URL (`HIGH_PRIORITY_QUEUES`); empty: none."""

    @property
    def regions(self) -> list[str]:
        return list(self.region_queues)

    def inference_queues(self) -> dict[str, tuple[str, str]]:
        """Every region's queues by display name (``us-west-2``, then ``us-west-2 high``):
        (region, URL)."""
        queues: dict[str, tuple[str, str]] = {}
        for region, url in self.region_queues.items():
            queues[region] = (region, url)
            if region in self.high_priority_queues:
                queues[region + HIGH_LANE] = (region, self.high_priority_queues[region])
        return queues

    def _resources_environ(self) -> dict[str, str]:
        environ = {
            "REGION_QUEUES": json.dumps(dict(self.region_queues)),
            "IDEMPOTENCY_TABLE_NAME": self.table_name,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.primary_region,
            "AWS_DEFAULT_REGION": self.primary_region,
        }
        if self.workers_table:
            environ["WORKERS_TABLE_NAME"] = self.workers_table
        if self.high_priority_queues:
            environ["HIGH_PRIORITY_QUEUES"] = json.dumps(dict(self.high_priority_queues))
        return environ

    def distributor_environ(self, **overrides: str) -> dict[str, str]:
        """The distributor's environment: the template's fixed values, the local resources'
        names (routing reads live capacity from the presence table), the endpoint, then
        `overrides` (e.g. ``CACHE_TTL="1"``)."""
        environ = dict(self.spec.function.environment)
        environ.update(self._resources_environ())
        environ["DEAD_LETTER_QUEUE_URL"] = self.dead_letter_queue_url
        environ.update(overrides)
        return environ

    def rescue_environ(self, **overrides: str) -> dict[str, str]:
        """The rescue function's environment, built like the distributor's."""
        environ = dict(self.spec.rescue.environment) if self.spec.rescue else {}
        environ.update(self._resources_environ())
        environ.update(overrides)
        return environ

    def worker_environ(self, region: str) -> dict[str, str]:
        """What a worker pod in `region` gets (docs/deployment.md, infrastructure/k8s): its
        queues (standard and high-priority) and region, the request and presence tables in the
        primary region, its region's results bucket, the endpoint and fake credentials. Flags
        and the model's own settings come on top."""
        environ = {
            "WORKER_QUEUE_URL": self.region_queues[region],
            "WORKER_REGION": region,
            "IDEMPOTENCY_TABLE_NAME": self.table_name,
            "IDEMPOTENCY_TABLE_REGION": self.primary_region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            **FAKE_CREDENTIALS,
        }
        if self.workers_table:
            environ["WORKERS_TABLE_NAME"] = self.workers_table
        if region in self.results_buckets:
            environ["RESULTS_BUCKET"] = self.results_buckets[region]
        if region in self.high_priority_queues:
            environ["WORKER_HIGH_PRIORITY_QUEUE_URL"] = self.high_priority_queues[region]
        return environ

    def advertised(self, path: Path) -> LocalStack:
        """This stack as the stack file at `path` describes it to other processes."""
        return LocalStack(
            path=path,
            endpoint_url=self.endpoint_url,
            primary_region=self.primary_region,
            master_queue_url=self.master_queue_url,
            dead_letter_queue_url=self.dead_letter_queue_url,
            table_name=self.table_name,
            region_queues=dict(self.region_queues),
        )

    @classmethod
    def from_local_stack(cls, stack: LocalStack, spec: StackSpec) -> StackResources:
        """A stack another process created, from its stack file. `ValueError` when the file
        lacks what the distributor needs (the dead-letter queue or the table)."""
        if not stack.dead_letter_queue_url or not stack.table_name:
            raise ValueError(
                f"{stack.path}: the distributor needs 'dead_letter_queue_url' and 'table_name'"
            )
        # The stack file names the request table only; the presence table was created beside
        # it with the same suffix (`create_stack(name_suffix=...)`).
        suffix = stack.table_name.removeprefix(spec.table.name)
        workers_table = None
        if spec.workers_table is not None and stack.table_name.startswith(spec.table.name):
            workers_table = spec.workers_table.name + suffix
        # Nor does it name the high-priority queues: each was created beside its region's
        # queue with the template's name and the same suffix (moto's URL: endpoint/account/name).
        high_queues = {
            region: url.rsplit("/", 1)[0] + "/" + _suffixed(high.name, suffix)
            for region, high in spec.region_high_priority_queues.items()
            if (url := stack.region_queues.get(region))
        }
        if set(high_queues) != set(stack.region_queues):
            high_queues = {}
        return cls(
            endpoint_url=stack.endpoint_url,
            primary_region=stack.primary_region,
            master_queue_url=stack.master_queue_url,
            master_queue_arn=queue_arn(
                stack.primary_region, stack.master_queue_url.rsplit("/", 1)[-1]
            ),
            dead_letter_queue_url=stack.dead_letter_queue_url,
            table_name=stack.table_name,
            region_queues=dict(stack.region_queues),
            spec=spec,
            workers_table=workers_table,
            high_priority_queues=high_queues,
        )


def queue_arn(region: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}"


def create_stack(
    sqs: Mapping[str, Any],
    dynamodb: Any,
    spec: StackSpec,
    *,
    endpoint_url: str,
    name_suffix: str = "",
    s3: Mapping[str, Any] | None = None,
    sns: Any = None,
) -> StackResources:
    """Create every resource of `spec`; `sqs` and `s3` hold one client per region of the spec
    (and the primary region), `dynamodb` and `sns` are clients in the primary region. Without
    `s3` no bucket is made, without `sns` no callback topic. `name_suffix` is appended to every
    name, so that several stacks can share one moto server."""
    primary = spec.primary_region
    master_dlq_url, master_dlq_arn = _create_queue(
        sqs[primary], spec.master_dead_letter_queue, name_suffix
    )
    master_url, master_arn = _create_queue(
        sqs[primary],
        spec.master_queue,
        name_suffix,
        {spec.master_dead_letter_queue.logical_id: master_dlq_arn},
    )
    region_queues: dict[str, str] = {}
    region_dlqs: dict[str, str] = {}
    high_queues: dict[str, str] = {}
    for region, queue in spec.region_queues.items():
        dlq = spec.region_dead_letter_queues[region]
        region_dlqs[region], dlq_arn = _create_queue(sqs[region], dlq, name_suffix)
        arns = {dlq.logical_id: dlq_arn}
        region_queues[region], _ = _create_queue(sqs[region], queue, name_suffix, arns)
        if (high := spec.region_high_priority_queues.get(region)) is not None:
            high_queues[region], _ = _create_queue(sqs[region], high, name_suffix, arns)
    table_name = _create_table(dynamodb, spec.table, name_suffix)
    workers_table = None
    if spec.workers_table is not None:
        workers_table = _create_table(dynamodb, spec.workers_table, name_suffix)
    buckets: dict[str, str] = {}
    if s3 is not None:
        for region, bucket in spec.results_buckets.items():
            buckets[region] = _create_bucket(s3[region], region, bucket, name_suffix)
    topic_arn, notification_url = None, None
    if sns is not None:
        topic_arn, notification_url = _create_callback_topic(sns, sqs[primary], name_suffix)
    return StackResources(
        endpoint_url=endpoint_url,
        primary_region=primary,
        master_queue_url=master_url,
        master_queue_arn=master_arn,
        dead_letter_queue_url=master_dlq_url,
        table_name=table_name,
        region_queues=region_queues,
        region_dead_letter_queues=region_dlqs,
        spec=spec,
        workers_table=workers_table,
        results_buckets=buckets,
        callback_topic_arn=topic_arn,
        notification_queue_url=notification_url,
        high_priority_queues=high_queues,
    )


def _suffixed(name: str, suffix: str) -> str:
    if name.endswith(".fifo"):
        return name[: -len(".fifo")] + suffix + ".fifo"
    return name + suffix


def _create_queue(
    client: Any, queue: QueueSpec, suffix: str, arns: Mapping[str, str] | None = None
) -> tuple[str, str]:
    attributes = dict(queue.attributes)
    if queue.dead_letter_queue is not None:
        target = (arns or {}).get(queue.dead_letter_queue)
        if target is None:
            raise ValueError(f"{queue.logical_id}: create {queue.dead_letter_queue} first")
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": target, "maxReceiveCount": queue.max_receive_count}
        )
    url = client.create_queue(QueueName=_suffixed(queue.name, suffix), Attributes=attributes)[
        "QueueUrl"
    ]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _create_table(client: Any, table: TableSpec, suffix: str) -> str:
    name = table.name + suffix
    capacity: dict[str, Any] = {"BillingMode": table.billing_mode}
    if table.billing_mode == "PROVISIONED":
        capacity["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    client.create_table(
        TableName=name,
        KeySchema=list(table.key_schema),
        AttributeDefinitions=list(table.attribute_definitions),
        **capacity,
    )
    if table.ttl_attribute:
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": table.ttl_attribute, "Enabled": True},
        )
    return name


def _create_bucket(client: Any, region: str, bucket: BucketSpec, suffix: str) -> str:
    name = (bucket.name + suffix).lower()
    if region == "us-east-1":  # S3 refuses a LocationConstraint naming its default region
        client.create_bucket(Bucket=name)
    else:
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    return name


def _create_callback_topic(sns: Any, sqs: Any, suffix: str) -> tuple[str, str]:
    """The clients' callback topic and a queue subscribed to it (SNS's JSON envelope kept)."""
    topic_arn = str(sns.create_topic(Name=CALLBACK_TOPIC + suffix)["TopicArn"])
    url = sqs.create_queue(QueueName=f"{CALLBACK_TOPIC}{suffix}-notifications")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return topic_arn, str(url)
