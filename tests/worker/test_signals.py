"""Spot interruption: real worker processes, real signals, against a moto server.

Karpenter drains the node on the 2-minute notice and the kubelet sends SIGTERM; a second
SIGTERM (or SIGINT) means "now". Nothing held may be lost either way.
"""

from __future__ import annotations

import signal
import time
import urllib.request

import boto3
import pytest

from orchestrator.core.record import RequestStatus
from worker.conftest import WorkerStack, create_stack, make_request, wait_until
from worker.moto_server import AtomicMotoServer
from worker.processes import WorkerProcess, started

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    server = AtomicMotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack(server, monkeypatch) -> WorkerStack:
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    return create_stack(boto3.session.Session())


@pytest.fixture
def spawn(stack, server, tmp_path):
    processes: list[WorkerProcess] = []
    log = tmp_path / "executions.jsonl"

    def start(*args: str, **env: str) -> WorkerProcess:
        process = WorkerProcess(stack, server.endpoint_url, log, *args, **env)
        processes.append(process)
        return process.wait_started()

    start.log = log  # type: ignore[attr-defined]
    yield start
    for process in processes:
        process.kill()


def test_sigterm_finishes_the_running_batch_hands_back_the_rest_and_exits_0(stack, spawn):
    documents = [make_request() for _ in range(8)]
    stack.forward(documents)
    worker = spawn("--batch-size", "2", SIM_CALL_SECONDS="4")
    wait_until(lambda: started(spawn.log), 20)
    # One batch running, two gathered ahead (--prefetch-batches 2), two left in the queue.
    wait_until(lambda: stack.depth() == (2, 6), 10)
    worker.signal(signal.SIGTERM)
    # The batches gathered ahead are back at once, while the running one is still running.
    wait_until(lambda: stack.depth() == (6, 2), 3)
    assert worker.process.poll() is None
    assert worker.wait(30) == 0
    running = started(spawn.log)
    assert len(running) == 2  # nothing new started after the signal
    for document in documents:
        record = stack.record(document["request_id"])
        if document["request_id"] in running:
            assert record.status is RequestStatus.SUCCEEDED
        else:  # never started: unclaimed, or claimed ahead and released with the attempt refunded
            assert record.status in (RequestStatus.FORWARDED, RequestStatus.RUNNING)
            assert record.attempt == 0 and (record.run_lease_expires_at or 0) < time.time()
    assert stack.depth() == (6, 0)  # the rest are visible again at once, none lost
    assert worker.logged("drained; exiting")
    assert stack.presence_items() == []


def test_a_batch_longer_than_the_drain_is_handed_back_and_still_exits_0(stack, spawn):
    document = make_request()
    stack.forward([document])
    worker = spawn("--batch-size", "1", "--drain-seconds", "1", SIM_CALL_SECONDS="30")
    wait_until(lambda: started(spawn.log), 20)
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert stack.depth() == (1, 0)
    record = stack.record(document["request_id"])
    assert record.status is RequestStatus.RUNNING and record.attempt == 0  # the attempt is refunded
    assert record.run_lease_expires_at <= time.time() + 3  # released: claimable in a moment


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT,)],
    ids=["second-sigterm", "sigint"],
)
def test_a_second_sigterm_or_sigint_hands_everything_back_at_once_and_exits_3(
    stack, spawn, signals
):
    documents = [make_request() for _ in range(4)]
    stack.forward(documents)
    worker = spawn("--batch-size", "2", SIM_CALL_SECONDS="60")
    wait_until(lambda: started(spawn.log), 20)
    wait_until(lambda: stack.depth() == (0, 4), 10)
    signalled = time.monotonic()
    for signum in signals:
        worker.signal(signum)
        time.sleep(0.3)
    assert worker.wait(15) == 3
    assert time.monotonic() - signalled < 10  # not the 60-second batch, nor the 90-second drain
    assert stack.depth() == (4, 0)
    for document in documents:
        assert stack.record(document["request_id"]).status is not RequestStatus.SUCCEEDED


def test_probes_metrics_and_json_logs(stack, spawn):
    documents = [make_request() for _ in range(3)]
    worker = spawn("--batch-size", "10", "--max-wait", "0.5", "--drain-seconds", "2")
    port = worker.logged("worker started")["http_port"]
    base = f"http://127.0.0.1:{port}"
    assert urllib.request.urlopen(f"{base}/healthz").status == 200
    assert urllib.request.urlopen(f"{base}/readyz").status == 200
    stack.forward(documents)
    wait_until(lambda: all(stack.record(d["request_id"]).status.is_final for d in documents), 20)
    wait_until(lambda: worker.logged("batch settled"), 10)
    metrics = urllib.request.urlopen(f"{base}/metrics").read().decode()
    for name in (
        "worker_batches_total",
        "worker_batch_size_bucket",
        'worker_requests_total{outcome="succeeded"} 3.0',
        "worker_items_per_second",
        "worker_queue_wait_seconds_bucket",
        "worker_processing_seconds_bucket",
        "worker_in_flight",
        "worker_failures_total",
    ):
        assert name in metrics, name
    settled_line = worker.logged("batch settled")
    assert sorted(settled_line["request_ids"]) == sorted(d["request_id"] for d in documents)
    assert settled_line["worker_id"].startswith("proc-") and settled_line["level"] == "INFO"
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
