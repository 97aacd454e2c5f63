"""The rescue function (`orchestrator.rescue`) on the local stack's timer: one run moves a
stranded backlog, and a whole pipeline run whose region loses its workers half-way finishes
every request elsewhere, none lost and none run twice."""

from __future__ import annotations

import io
import json
import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localrun.demo_options import DemoOptions
from localrun.demo_run import run_demo
from localrun.rescue_timer import RescueTimer
from localrun.stack import RunningStack, running_stack
from localrun.summary import ran_elsewhere, rescued
from localrun.workers import WorkerOptions
from orchestrator.core import presence
from orchestrator.core.timefmt import iso_utc


@pytest.fixture(scope="module")
def local() -> Iterator[RunningStack]:
    with running_stack(name_suffix=f"-{uuid.uuid4().hex[:8]}") as running:
        yield running


def test_one_run_moves_a_backlog_nobody_takes_to_a_region_with_workers(
    local: RunningStack, tmp_path: Path, depth: Any
) -> None:
    stack = local.stack
    assert stack.workers_table
    now = time.time()
    alive = presence.WorkerPresence(
        region="us-east-1",
        worker_id="east-1",
        capacity=8,
        busy=0,
        draining=False,
        heartbeat_at=iso_utc(now),
        expires_at=math.ceil(now + 60),
    )
    presence.publish(local.dynamodb, stack.workers_table, alive)
    body = json.dumps(
        {"request_id": "stranded-1", "model_name": "m", "input_data_url": "s3://in/x"}
    )
    local.sqs["us-west-2"].send_message(QueueUrl=stack.region_queues["us-west-2"], MessageBody=body)
    log = tmp_path / "rescue.log"
    timer = RescueTimer(
        stack.rescue_environ(RESCUE_STALL_SECONDS="0", RESCUE_MAX_AGE_SECONDS="0"),
        local.session,
        interval=60,
        log=log,
    )
    try:
        run = timer.run_once()
    finally:
        timer.stop()
    assert run.stranded == {"us-west-2": "no-consumers"}
    assert run.rescued() == {"us-west-2": 1}  # no routing attributes: moved "unrecorded"
    assert depth(local.sqs["us-west-2"], stack.region_queues["us-west-2"]) == (0, 0)
    got = local.sqs["us-east-1"].receive_message(QueueUrl=stack.region_queues["us-east-1"])
    assert [m["Body"] for m in got["Messages"]] == [body]
    assert '"message":"rescue run"' in log.read_text()  # the function's own log, not stdout


@pytest.mark.slow
def test_a_region_whose_workers_stop_has_its_backlog_run_elsewhere(tmp_path: Path) -> None:
    stop_after = 1.0
    options = DemoOptions(
        count=150,
        duplicates=0,
        malformed=0,
        retryable=0,
        permanent=0,
        rate=75,
        workers=WorkerOptions(call_ms=100, item_ms=20),
        rescue_every=1.0,
        rescue_stall=2.0,
        stop=("us-east-1", stop_after),
        timeout=90,
        report=tmp_path / "demo.html",
    )
    result = run_demo(options, io.StringIO())
    failed = [c for c in result.checks if not c.passed]
    assert result.passed, (failed, result.thread_failures)  # none lost, none run twice, ...
    _, taken = rescued(result)
    assert taken["us-east-1"] > 0, "no backlog was stranded: the scenario showed nothing"
    assert set(taken) == {"us-east-1"}  # the healthy regions were never judged stranded
    # What the rescue took out of us-east-1 ran in the other regions, each exactly once.
    elsewhere = ran_elsewhere(result, "us-east-1")
    assert len(elsewhere) == taken["us-east-1"]
    # us-east-1's workers drained (exit 0) and started nothing after their SIGTERM.
    east = [w for w in result.worker_exits if w.startswith("us-east-1-")]
    assert len(east) == 4 and all(result.worker_exits[w] == 0 for w in east)
    signalled = result.first_send_at + stop_after
    late = [e for e in result.executions if e.region == "us-east-1" and e.started > signalled + 0.5]
    assert not late, late
