"""The local stack's workers: the real `orchestrator worker` as processes against the stack's
moto server, serving the simulated model, draining on SIGTERM."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localrun.evidence import drain_notifications, read_result, request_records
from localrun.stack import RunningStack, running_stack
from localrun.workers import WorkerFailure, WorkerFleet, WorkerOptions
from orchestrator.core.presence import live_workers
from orchestrator.core.record import RequestStatus

REGION = "us-west-2"


@pytest.fixture(scope="module")
def local() -> Iterator[RunningStack]:
    with running_stack(name_suffix=f"-{uuid.uuid4().hex[:8]}") as running:
        yield running


def send(local: RunningStack, request_id: str, model: str = "mistral-7b") -> None:
    """A request straight onto the region queue, as a client of that queue would put it."""
    body = {
        "request_id": request_id,
        "model_name": model,
        "input_data_url": f"s3://demo-inference-inputs/{request_id}.json",
        "callback_sns_topic": local.stack.callback_topic_arn,
    }
    local.sqs[REGION].send_message(
        QueueUrl=local.stack.region_queues[REGION], MessageBody=json.dumps(body)
    )


@pytest.mark.slow
def test_the_fleet_runs_the_real_worker_and_drains_it_on_sigterm(
    local: RunningStack, tmp_path: Path, wait_until: Any
) -> None:
    stack = local.stack
    fleet = WorkerFleet(stack, {REGION: 1}, tmp_path / "workers", WorkerOptions(call_ms=10))
    with fleet:
        fleet.wait_ready()
        (worker,) = fleet.workers
        assert worker.worker_id == f"{REGION}-w1" and worker.http_port
        assert stack.workers_table
        (presence,) = live_workers(local.dynamodb, stack.workers_table, REGION, time.time())
        assert (presence.worker_id, presence.capacity) == (worker.worker_id, 8)  # its batch
        ids = [f"wk-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        send(local, ids[0])
        send(local, ids[1])
        send(local, ids[2], model="sdxl-turbo")  # a result too large to keep inline
        assert wait_until(lambda: fleet.done_per_region()[REGION] == 3, timeout=20)

        def finished() -> dict[str, Any]:
            records = request_records(local.dynamodb, stack.table_name)
            return {rid: records[rid] for rid in ids if rid in records}

        records = wait_until(
            lambda: (r := finished()) and all(x.status.is_final for x in r.values()) and r
        )
        for rid in ids:
            assert records[rid].status is RequestStatus.SUCCEEDED
            assert records[rid].worker_id == worker.worker_id
        buckets = {bucket: region for region, bucket in stack.results_buckets.items()}
        reads = {rid: read_result(records[rid], local.s3, buckets) for rid in ids}
        assert [reads[rid].where for rid in ids] == ["inline", "inline", "s3"]
        assert all(read.value["request_id"] == rid for rid, read in reads.items())
        notes: list[Any] = []
        assert stack.notification_queue_url
        assert wait_until(
            lambda: (
                notes.extend(
                    drain_notifications(local.sqs["us-east-1"], str(stack.notification_queue_url))
                )
                or len(notes) >= 3
            ),
            timeout=10,
        )
        assert sorted(n.request_id for n in notes) == sorted(ids)
    # Leaving the block sent SIGTERM: a drain, exit 0, the presence item withdrawn.
    assert fleet.exit_codes() == {worker.worker_id: 0}
    assert fleet.failure is None
    assert live_workers(local.dynamodb, stack.workers_table, REGION, time.time()) == []
    log = worker.log.read_text()
    assert '"message": "SIGTERM: draining"' in log and '"message": "drained; exiting"' in log


@pytest.mark.slow
def test_a_worker_that_cannot_start_is_reported(local: RunningStack, tmp_path: Path) -> None:
    fleet = WorkerFleet(local.stack, {REGION: 1}, tmp_path, WorkerOptions(batch_size=0))
    with fleet, pytest.raises(WorkerFailure, match=r"exited with status 2 before it started"):
        fleet.wait_ready()
    assert "--batch-size / WORKER_BATCH_SIZE" in fleet.workers[0].log.read_text()
