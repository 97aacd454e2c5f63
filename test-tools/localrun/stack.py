"""A whole local stack in this process: moto server, the templates' resources, clients.

with running_stack() as local:
    local.stack.master_queue_url, local.sqs["us-west-2"], local.session
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localrun.poller import EventSourceConfig
from localrun.resources import StackResources, create_stack
from localrun.server import LocalServer, LocalSession
from localrun.templates import PRIMARY_REGION, REGIONS, load_stack_spec

# Lambda starts five pollers on a standard queue; the template's MaximumConcurrency caps them.
INITIAL_POLLERS = 5


@dataclass(frozen=True)
class RunningStack:
    stack: StackResources
    session: LocalSession
    sqs: Mapping[str, Any]
    """One SQS client per region."""
    dynamodb: Any
    s3: Mapping[str, Any]
    """One S3 client per region."""
    sns: Any
    """In the primary region (the callback topic's)."""


@contextmanager
def running_stack(
    *,
    infrastructure: Path | None = None,
    primary_region: str = PRIMARY_REGION,
    regions: Sequence[str] = REGIONS,
    name_suffix: str = "",
    parameters: Mapping[str, Any] | None = None,
) -> Iterator[RunningStack]:
    """Start a moto server, create the stack the templates declare, stop the server after."""
    spec = load_stack_spec(
        infrastructure, primary_region=primary_region, regions=regions, parameters=parameters
    )
    server = LocalServer().start()
    try:
        session = LocalSession(server.endpoint_url, primary_region)
        every = sorted({primary_region, *regions})
        sqs = session.sqs_clients(every)
        s3 = {region: session.client("s3", region_name=region) for region in every}
        dynamodb = session.client("dynamodb", region_name=primary_region)
        sns = session.client("sns", region_name=primary_region)
        stack = create_stack(
            sqs,
            dynamodb,
            spec,
            endpoint_url=server.endpoint_url,
            name_suffix=name_suffix,
            s3=s3,
            sns=sns,
        )
        yield RunningStack(stack=stack, session=session, sqs=sqs, dynamodb=dynamodb, s3=s3, sns=sns)
    finally:
        server.stop()


def event_source_config(stack: StackResources, pollers: int | None = None) -> EventSourceConfig:
    """The master queue's event source mapping as the template declares it."""
    function = stack.spec.function
    cap = function.maximum_concurrency or INITIAL_POLLERS
    return EventSourceConfig(
        queue_url=stack.master_queue_url,
        queue_arn=stack.master_queue_arn,
        region=stack.primary_region,
        function_name=function.name,
        function_timeout=function.timeout,
        memory_mb=function.memory_mb,
        batch_size=function.batch_size,
        batching_window=function.batching_window,
        report_batch_item_failures=function.report_batch_item_failures,
        pollers=min(pollers or INITIAL_POLLERS, cap),
    )
