"""Reading a finished demo run back into a `DemoResult`: the request table, the results
(inline or in S3), the notifications, every dead-letter queue and the model's executions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from localrun.demo_options import DemoOptions
from localrun.depths import read_depths
from localrun.evidence import (
    drain_dead_letters,
    drain_notifications,
    read_result,
    request_records,
)
from localrun.stack import RunningStack
from localrun.summary import DEAD_LETTERS, MASTER, NOTIFICATIONS, DemoResult
from localrun.workers import WorkerFleet
from orchestrator.core.record import RequestStatus
from orchestrator.core.sqs import QueueDepth, read_depth


def watched_queues(local: RunningStack) -> dict[str, tuple[Any, str]]:
    """The queues whose depth the demo watches: master, each region's (standard and high),
    the master DLQ."""
    stack = local.stack
    queues = {
        name: (local.sqs[region], url) for name, (region, url) in stack.inference_queues().items()
    }
    primary = local.sqs[stack.primary_region]
    queues[MASTER] = (primary, stack.master_queue_url)
    queues[DEAD_LETTERS] = (primary, stack.dead_letter_queue_url)
    return queues


def collect(
    options: DemoOptions,
    local: RunningStack,
    fleet: WorkerFleet,
    sent: Sequence[Any],
    samples: Sequence[Any],
) -> DemoResult:
    """Read back what the run left: records, results, notifications, dead letters."""
    stack = local.stack
    primary = local.sqs[stack.primary_region]
    records = request_records(local.dynamodb, stack.table_name)
    bucket_regions = {bucket: region for region, bucket in stack.results_buckets.items()}
    results = {
        rid: read_result(record, local.s3, bucket_regions)
        for rid, record in records.items()
        if record.status is RequestStatus.SUCCEEDED
    }
    notifications = (
        drain_notifications(primary, stack.notification_queue_url)
        if stack.notification_queue_url
        else []
    )
    return DemoResult(
        settings={},
        capacities=dict(options.capacities),
        sent=sent,
        records=records,
        executions=fleet.executions(),
        calls=fleet.predict_calls(),
        results=results,
        notifications=notifications,
        dead_letters=drain_dead_letters(primary, stack.dead_letter_queue_url),
        region_dead_letters={
            region: drain_dead_letters(local.sqs[region], url)
            for region, url in stack.region_dead_letter_queues.items()
        },
        samples=samples,
        final_depths={},
    )


def final_depths(local: RunningStack) -> dict[str, QueueDepth]:
    depths = read_depths(watched_queues(local))
    stack = local.stack
    if stack.notification_queue_url:
        depths[NOTIFICATIONS] = read_depth(
            local.sqs[stack.primary_region], stack.notification_queue_url
        )
    return depths
