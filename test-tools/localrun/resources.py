"""Create, in the local endpoint, the resources the templates declare, and describe them.

`create_stack(sqs_clients, dynamodb, spec)` makes the master queue and its dead-letter queue,
the idempotency table (key schema, TTL) and one inference queue (+ dead-letter queue) per
region, each with the attributes and redrive policy the templates give it. The result,
`StackResources`, knows the URLs and ARNs and produces the distributor's environment; what
other processes are told about it is an `orchestrator.core.stackfile.LocalStack`
(`advertised`), the one description of a local stack, written by `localrun.stackfile`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localrun.cfn import ACCOUNT_ID
from localrun.templates import QueueSpec, StackSpec, TableSpec
from orchestrator.core.stackfile import LocalStack


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

    @property
    def regions(self) -> list[str]:
        return list(self.region_queues)

    def distributor_environ(self, **overrides: str) -> dict[str, str]:
        """The distributor's environment: the template's fixed values, the local resources'
        names, the endpoint, then `overrides` (e.g. ``CACHE_TTL="1"``)."""
        environ = dict(self.spec.function.environment)
        environ.update(
            REGION_QUEUES=json.dumps(dict(self.region_queues)),
            IDEMPOTENCY_TABLE_NAME=self.table_name,
            DEAD_LETTER_QUEUE_URL=self.dead_letter_queue_url,
            AWS_ENDPOINT_URL=self.endpoint_url,
            AWS_REGION=self.primary_region,
            AWS_DEFAULT_REGION=self.primary_region,
        )
        environ.update(overrides)
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
) -> StackResources:
    """Create every resource of `spec`; `sqs` holds one client per region of the spec (and the
    primary region), `dynamodb` is a client in the primary region. `name_suffix` is appended to
    every name, so that several stacks can share one moto server."""
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
    for region, queue in spec.region_queues.items():
        dlq = spec.region_dead_letter_queues[region]
        region_dlqs[region], dlq_arn = _create_queue(sqs[region], dlq, name_suffix)
        region_queues[region], _ = _create_queue(
            sqs[region], queue, name_suffix, {dlq.logical_id: dlq_arn}
        )
    table_name = _create_table(dynamodb, spec.table, name_suffix)
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
