"""What the SAM templates declare, read into the specs a local stack is built from.

`infrastructure/template.yaml` (the primary region) declares the master queue, its dead-letter
queue, the request table, the workers' presence table, the distributor function with its SQS
event source, the rescue function with its schedule, and the primary region's own inference
queues (standard and high-priority) and results bucket; `infrastructure/region.yaml` declares
the inference queues and the results bucket of every other region. Logical ids are fixed in
docs/contracts.md. Reading them here, rather than repeating names and settings, keeps the
local stack from drifting from the deployed one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localrun.cfn import Resolver, ResourceRef, TemplateError, pseudo_parameters, read_template

PRIMARY_TEMPLATE = "template.yaml"
REGION_TEMPLATE = "region.yaml"
PRIMARY_REGION = "us-east-1"
REGIONS = ("us-east-1", "us-west-2", "us-west-1")
STACK_NAME = "inference-orchestrator-local"

MASTER_QUEUE = "MasterQueue"
MASTER_DEAD_LETTER_QUEUE = "MasterDeadLetterQueue"
IDEMPOTENCY_TABLE = "IdempotencyTable"
WORKERS_TABLE = "WorkersTable"
DISTRIBUTOR_FUNCTION = "DistributorFunction"
RESCUE_FUNCTION = "RescueFunction"
REGION_QUEUE = "RegionQueue"
REGION_HIGH_PRIORITY_QUEUE = "RegionHighPriorityQueue"
REGION_DEAD_LETTER_QUEUE = "RegionDeadLetterQueue"
RESULTS_BUCKET = "ResultsBucket"

# CloudFormation queue properties that are also SQS queue attributes of the same name.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "SqsManagedSseEnabled",
)
# Lambda's defaults when a template leaves a setting out.
_DEFAULT_TIMEOUT = 3
_DEFAULT_MEMORY = 128
_DEFAULT_BATCH_SIZE = 10
_SQS_DEFAULT_VISIBILITY_TIMEOUT = 30


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    attributes: Mapping[str, str]
    """SQS attributes (strings), the redrive policy excluded."""
    dead_letter_queue: str | None = None
    """Logical id of the redrive target."""
    max_receive_count: int | None = None

    @property
    def visibility_timeout(self) -> int:
        return int(self.attributes.get("VisibilityTimeout", _SQS_DEFAULT_VISIBILITY_TIMEOUT))


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    key_schema: Sequence[Mapping[str, str]]
    attribute_definitions: Sequence[Mapping[str, str]]
    ttl_attribute: str | None
    billing_mode: str = "PAY_PER_REQUEST"


@dataclass(frozen=True)
class FunctionSpec:
    """The distributor function and its SQS event source mapping."""

    logical_id: str
    name: str
    handler: str
    timeout: int
    memory_mb: int
    batch_size: int
    batching_window: float
    report_batch_item_failures: bool
    maximum_concurrency: int | None
    environment: Mapping[str, str] = field(default_factory=dict)
    """Variables whose value the template fixes (resource references left out)."""


@dataclass(frozen=True)
class ScheduledFunctionSpec:
    """The rescue function: a handler run on an EventBridge schedule."""

    logical_id: str
    name: str
    handler: str
    timeout: int
    schedule_seconds: float | None
    """The schedule's period (``rate(1 minute)`` is 60); None for a cron expression."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Variables whose value the template fixes (resource references left out)."""


@dataclass(frozen=True)
class BucketSpec:
    logical_id: str
    name: str


@dataclass(frozen=True)
class StackSpec:
    primary_region: str
    master_queue: QueueSpec
    master_dead_letter_queue: QueueSpec
    table: TableSpec
    function: FunctionSpec
    region_queues: Mapping[str, QueueSpec]
    region_dead_letter_queues: Mapping[str, QueueSpec]
    workers_table: TableSpec | None = None
    results_buckets: Mapping[str, BucketSpec] = field(default_factory=dict)
    rescue: ScheduledFunctionSpec | None = None
    region_high_priority_queues: Mapping[str, QueueSpec] = field(default_factory=dict)
    """Each region's `RegionHighPriorityQueue`; empty when the templates declare none."""

    @property
    def regions(self) -> list[str]:
        return list(self.region_queues)


def infrastructure_dir() -> Path:
    """`infrastructure/` of the repository this package lives in."""
    return Path(__file__).resolve().parents[2] / "infrastructure"


def load_stack_spec(
    infrastructure: Path | None = None,
    *,
    primary_region: str = PRIMARY_REGION,
    regions: Sequence[str] = REGIONS,
    parameters: Mapping[str, Any] | None = None,
    stack_name: str = STACK_NAME,
) -> StackSpec:
    """Read both templates; `TemplateError` names what is missing or cannot be evaluated."""
    folder = infrastructure or infrastructure_dir()
    primary = read_template(folder / PRIMARY_TEMPLATE)
    resolver = Resolver(primary, pseudo_parameters(primary_region, stack_name), parameters)
    region_queues = {primary_region: _queue(resolver, REGION_QUEUE, stack_name)}
    region_dlqs = {primary_region: _queue(resolver, REGION_DEAD_LETTER_QUEUE, stack_name)}
    high_queues: dict[str, QueueSpec] = {}
    if REGION_HIGH_PRIORITY_QUEUE in resolver.resources:
        high_queues[primary_region] = _queue(resolver, REGION_HIGH_PRIORITY_QUEUE, stack_name)
    buckets: dict[str, BucketSpec] = {}
    if RESULTS_BUCKET in resolver.resources:
        buckets[primary_region] = _bucket(resolver, RESULTS_BUCKET, stack_name)
    remote = [region for region in regions if region != primary_region]
    if remote:
        template = read_template(folder / REGION_TEMPLATE)
        for region in remote:
            name = f"{stack_name}-{region}"
            other = Resolver(template, pseudo_parameters(region, name), parameters)
            region_queues[region] = _queue(other, REGION_QUEUE, name)
            region_dlqs[region] = _queue(other, REGION_DEAD_LETTER_QUEUE, name)
            if REGION_HIGH_PRIORITY_QUEUE in other.resources:
                high_queues[region] = _queue(other, REGION_HIGH_PRIORITY_QUEUE, name)
            if RESULTS_BUCKET in other.resources:
                buckets[region] = _bucket(other, RESULTS_BUCKET, name)
    if high_queues and set(high_queues) != set(region_queues):
        missing = ", ".join(sorted(set(region_queues) - set(high_queues)))
        raise TemplateError(f"{REGION_HIGH_PRIORITY_QUEUE} is not declared for {missing}")
    return StackSpec(
        primary_region=primary_region,
        master_queue=_queue(resolver, MASTER_QUEUE, stack_name),
        master_dead_letter_queue=_queue(resolver, MASTER_DEAD_LETTER_QUEUE, stack_name),
        table=_table(resolver, IDEMPOTENCY_TABLE, stack_name),
        function=_function(resolver, primary, DISTRIBUTOR_FUNCTION, stack_name),
        region_queues=region_queues,
        region_dead_letter_queues=region_dlqs,
        workers_table=(
            _table(resolver, WORKERS_TABLE, stack_name)
            if WORKERS_TABLE in resolver.resources
            else None
        ),
        results_buckets=buckets,
        rescue=_scheduled_function(resolver, primary, RESCUE_FUNCTION, stack_name),
        region_high_priority_queues=high_queues,
    )


def _properties(resolver: Resolver, logical_id: str, types: Sequence[str]) -> dict[str, Any]:
    resource = resolver.resources.get(logical_id)
    if not isinstance(resource, dict):
        raise TemplateError(f"resource {logical_id} is not declared")
    if resource.get("Type") not in types:
        raise TemplateError(f"resource {logical_id} is a {resource.get('Type')}, not {types[0]}")
    condition = resource.get("Condition")
    if condition and not resolver.condition(condition):
        raise TemplateError(f"resource {logical_id} is not created (condition {condition})")
    properties = resolver.resolve(resource.get("Properties") or {})
    return properties if isinstance(properties, dict) else {}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _queue(resolver: Resolver, logical_id: str, stack_name: str) -> QueueSpec:
    props = _properties(resolver, logical_id, ["AWS::SQS::Queue"])
    name = props.get("QueueName") or f"{stack_name}-{logical_id}"
    if not isinstance(name, str):
        raise TemplateError(f"{logical_id}: QueueName {name!r} cannot be evaluated locally")
    if props.get("FifoQueue") and not name.endswith(".fifo"):
        name += ".fifo"
    attributes = {key: _text(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    redrive = props.get("RedrivePolicy")
    if isinstance(redrive, str):
        redrive = json.loads(redrive)
    target, max_receive = None, None
    if isinstance(redrive, dict):
        arn = redrive.get("deadLetterTargetArn")
        if not isinstance(arn, ResourceRef):
            raise TemplateError(f"{logical_id}: the redrive target is not a queue of the template")
        target, max_receive = arn.logical_id, int(redrive["maxReceiveCount"])
    return QueueSpec(logical_id, name, attributes, target, max_receive)


def _table(resolver: Resolver, logical_id: str, stack_name: str) -> TableSpec:
    props = _properties(resolver, logical_id, ["AWS::DynamoDB::Table"])
    ttl = props.get("TimeToLiveSpecification") or {}
    ttl_enabled = str(ttl.get("Enabled", "false")).lower() == "true"
    return TableSpec(
        logical_id=logical_id,
        name=str(props.get("TableName") or f"{stack_name}-{logical_id}"),
        key_schema=[dict(item) for item in props["KeySchema"]],
        attribute_definitions=[dict(item) for item in props["AttributeDefinitions"]],
        ttl_attribute=ttl.get("AttributeName") if ttl_enabled else None,
        billing_mode=str(props.get("BillingMode", "PROVISIONED")),
    )


def _bucket(resolver: Resolver, logical_id: str, stack_name: str) -> BucketSpec:
    props = _properties(resolver, logical_id, ["AWS::S3::Bucket"])
    name = props.get("BucketName") or f"{stack_name}-{logical_id}".lower()
    if not isinstance(name, str):
        raise TemplateError(f"{logical_id}: BucketName {name!r} cannot be evaluated locally")
    return BucketSpec(logical_id, name)


_FUNCTION_TYPES = ["AWS::Serverless::Function", "AWS::Lambda::Function"]
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86_400}


def _merged_function(
    resolver: Resolver, template: Mapping[str, Any], logical_id: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(properties, properties over Globals, literal environment variables)."""
    props = _properties(resolver, logical_id, _FUNCTION_TYPES)
    globals_ = resolver.resolve((template.get("Globals") or {}).get("Function") or {})
    variables = {
        **((globals_.get("Environment") or {}).get("Variables") or {}),
        **((props.get("Environment") or {}).get("Variables") or {}),
    }
    environment = {
        key: _text(value)
        for key, value in variables.items()
        if isinstance(value, str | int | float | bool)
    }
    return props, {**globals_, **props}, environment


def _scheduled_function(
    resolver: Resolver, template: Mapping[str, Any], logical_id: str, stack_name: str
) -> ScheduledFunctionSpec | None:
    """The function and its `Schedule` event; None when the template does not declare it."""
    if logical_id not in resolver.resources:
        return None
    props, merged, environment = _merged_function(resolver, template, logical_id)
    period: float | None = None
    for event in (props.get("Events") or {}).values():
        if event.get("Type") == "Schedule":
            rate = _RATE.match(str((event.get("Properties") or {}).get("Schedule", "")))
            if rate:
                period = float(int(rate.group(1)) * _RATE_UNITS[rate.group(2).rstrip("s")])
    return ScheduledFunctionSpec(
        logical_id=logical_id,
        name=str(merged.get("FunctionName") or f"{stack_name}-{logical_id}"),
        handler=str(merged.get("Handler", "")),
        timeout=int(merged.get("Timeout", _DEFAULT_TIMEOUT)),
        schedule_seconds=period,
        environment=environment,
    )


def _function(
    resolver: Resolver, template: Mapping[str, Any], logical_id: str, stack_name: str
) -> FunctionSpec:
    props, merged, environment = _merged_function(resolver, template, logical_id)
    source = _sqs_event_source(resolver, props, logical_id)
    scaling = source.get("ScalingConfig") or {}
    return FunctionSpec(
        logical_id=logical_id,
        name=str(merged.get("FunctionName") or f"{stack_name}-{logical_id}"),
        handler=str(merged.get("Handler", "")),
        timeout=int(merged.get("Timeout", _DEFAULT_TIMEOUT)),
        memory_mb=int(merged.get("MemorySize", _DEFAULT_MEMORY)),
        batch_size=int(source.get("BatchSize", _DEFAULT_BATCH_SIZE)),
        batching_window=float(source.get("MaximumBatchingWindowInSeconds", 0)),
        report_batch_item_failures="ReportBatchItemFailures"
        in (source.get("FunctionResponseTypes") or []),
        maximum_concurrency=(
            int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None
        ),
        environment=environment,
    )


def _sqs_event_source(resolver: Resolver, props: Mapping[str, Any], function: str) -> dict:
    """The master queue's event source: a SAM `Events` entry or an EventSourceMapping."""
    for event in (props.get("Events") or {}).values():
        properties = event.get("Properties") or {}
        queue = properties.get("Queue")
        if event.get("Type") == "SQS" and _refers_to(queue, MASTER_QUEUE):
            return dict(properties)
    for logical_id, resource in resolver.resources.items():
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Lambda::EventSourceMapping":
            properties = _properties(resolver, logical_id, ["AWS::Lambda::EventSourceMapping"])
            if _refers_to(properties.get("EventSourceArn"), MASTER_QUEUE) and _refers_to(
                properties.get("FunctionName"), function
            ):
                return properties
    raise TemplateError(f"{function} has no SQS event source on {MASTER_QUEUE}")


def _refers_to(value: Any, logical_id: str) -> bool:
    return isinstance(value, ResourceRef) and value.logical_id == logical_id
