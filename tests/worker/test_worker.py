"""The worker end to end against moto: what a request's sender and an operator rely on."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from orchestrator.core.record import RequestStatus
from orchestrator.core.timefmt import iso_utc
from orchestrator.worker.runtime import Worker
from worker.conftest import PRIMARY, RecordingModel, RunningWorker, make_request, wait_until


def finished(stack: Any, request_ids: list[str]) -> bool:
    return all((r := stack.record(rid)) is not None and r.status.is_final for rid in request_ids)


def ids(documents: list[dict[str, Any]]) -> list[str]:
    return [d["request_id"] for d in documents]


def settled(stack: Any, documents: list[dict[str, Any]], timeout: float = 20) -> None:
    wait_until(lambda: finished(stack, ids(documents)), timeout)
    wait_until(lambda: stack.depth() == (0, 0), timeout)


# -- batching and the happy path ---------------------------------------------------------------
def test_requests_run_in_batches_and_succeed_with_two_writes_each(stack):
    writes: list[str] = []
    documents = [make_request() for _ in range(25)]
    stack.forward(documents)
    model = RecordingModel()
    clients = stack.clients()
    clients.dynamodb.meta.events.register(
        "before-parameter-build.dynamodb.UpdateItem",
        lambda params, **_: writes.append(params["Key"]["request_id"]["S"]),
    )
    worker = Worker(stack.settings(batch_size=10), model, clients, poll_seconds=1)
    with RunningWorker(worker) as handle:
        settled(stack, documents)
        assert handle.stop() == 0
    assert all(len(batch) <= 10 for batch in model.batches)
    assert max(len(batch) for batch in model.batches) > 1
    assert model.executions() == dict.fromkeys(ids(documents), 1)
    for document in documents:
        record = stack.record(document["request_id"])
        assert record.status is RequestStatus.SUCCEEDED
        assert (record.attempt, record.fencing_token) == (1, 1)
        assert json.loads(record.result) == {"echo": document["request_id"], "attempt": 1}
        assert record.started_at <= record.finished_at
    assert sorted(writes) == sorted(ids(documents) * 2)  # the claim and the final write


def test_the_model_is_loaded_once_before_the_first_batch(stack, start_worker):
    model = RecordingModel()
    handle = start_worker(model)
    assert model.loaded and handle.worker.ready


# -- failures ----------------------------------------------------------------------------------
def test_a_retryable_failure_comes_back_and_succeeds_on_a_later_attempt(stack, start_worker):
    document = make_request(metadata={"fail_times": 2})
    stack.forward([document])
    model = RecordingModel()
    start_worker(model, max_attempts=3)
    settled(stack, [document])
    record = stack.record(document["request_id"])
    assert record.status is RequestStatus.SUCCEEDED and record.attempt == 3
    assert model.executions()[document["request_id"]] == 3
    assert stack.dead_letters() == []


def test_a_retry_waits_out_its_backoff_in_the_queue(stack, start_worker):
    """Through ChangeMessageVisibility: the message stays in the queue, invisible."""
    document = make_request(metadata={"fail_times": 1})
    stack.forward([document])
    model = RecordingModel()
    start_worker(model, retry_base_seconds=4.0)  # first retry after 2-4 s
    wait_until(lambda: stack.record(document["request_id"]).error_code == "RETRYABLE", 10)
    failed_at = time.monotonic()
    assert stack.depth()[1] == 1  # in flight: waiting out its backoff, not deleted
    settled(stack, [document])
    assert time.monotonic() - failed_at >= 1.0
    assert stack.record(document["request_id"]).attempt == 2


def test_after_max_attempts_the_request_fails_and_is_dead_lettered(stack, start_worker):
    document = make_request(metadata={"outcome": "retryable"})
    stack.forward([document])
    model = RecordingModel()
    start_worker(model, max_attempts=2)
    settled(stack, [document])
    record = stack.record(document["request_id"])
    assert (record.status, record.error_code) == (RequestStatus.FAILED, "RETRYABLE")
    assert "attempt 2 of 2" in record.error_message
    assert model.executions()[document["request_id"]] == 2
    [letter] = stack.dead_letters()
    attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert (
        attributes["error_code"] == "RETRYABLE" and "attempt 2 of 2" in attributes["error_message"]
    )
    assert attributes["request_id"] == document["request_id"]
    assert attributes["origin_message_id"] == f"master-{document['request_id']}"
    assert json.loads(letter["Body"]) == document  # the request as sent


def test_a_permanent_failure_fails_at_once(stack, start_worker):
    document = make_request(metadata={"outcome": "permanent"})
    stack.forward([document])
    model = RecordingModel()
    start_worker(model, max_attempts=5)
    settled(stack, [document])
    record = stack.record(document["request_id"])
    assert (record.status, record.error_code, record.error_message) == (
        RequestStatus.FAILED,
        "BAD_INPUT",
        "bad input",
    )
    assert model.executions()[document["request_id"]] == 1
    [letter] = stack.dead_letters()
    assert letter["MessageAttributes"]["error_code"]["StringValue"] == "BAD_INPUT"


def test_an_exception_in_the_results_fails_only_its_request(stack, start_worker):
    good = [make_request() for _ in range(3)]
    bad = make_request(metadata={"outcome": "permanent"})
    stack.forward([*good, bad])
    model = RecordingModel()
    start_worker(model, batch_size=10, max_wait=1.0)
    settled(stack, [*good, bad])
    assert len(model.batches) == 1
    assert [stack.record(d["request_id"]).status for d in good] == [RequestStatus.SUCCEEDED] * 3
    assert stack.record(bad["request_id"]).status is RequestStatus.FAILED


def test_predict_raising_fails_the_batch_retryably(stack, start_worker):
    documents = [make_request() for _ in range(3)]
    stack.forward(documents)

    class FlakyModel(RecordingModel):
        def predict(self, requests):
            if not self.batches:
                self.batches.append([r.request_id for r in requests])
                raise RuntimeError("CUDA error: out of memory")
            return super().predict(requests)

    model = FlakyModel()
    start_worker(model, batch_size=10, max_wait=1.0)
    settled(stack, documents)
    for document in documents:
        record = stack.record(document["request_id"])
        assert record.status is RequestStatus.SUCCEEDED and record.attempt == 2


def test_a_wrong_number_of_results_is_a_model_error(stack, start_worker):
    document = make_request()
    stack.forward([document])

    class ShortModel(RecordingModel):
        def predict(self, requests):
            super().predict(requests)
            return []

    start_worker(ShortModel(), max_attempts=1)
    settled(stack, [document])
    record = stack.record(document["request_id"])
    assert (
        record.error_code == "MODEL_ERROR"
        and "returned 0 results for 1 requests" in record.error_message
    )


def test_an_invalid_body_is_dead_lettered_without_a_record(stack, start_worker):
    stack.client("sqs").send_message(
        QueueUrl=stack.queue_url, MessageBody='{"request_id": "x-1", "model_name": 7}'
    )
    start_worker(RecordingModel())
    wait_until(lambda: stack.depth() == (0, 0), 10)
    [letter] = stack.dead_letters()
    assert (
        letter["MessageAttributes"]["error_code"]["StringValue"] == "MISSING_FIELD"
        or letter["MessageAttributes"]["error_code"]["StringValue"] == "INVALID_FIELD"
    )
    assert letter["MessageAttributes"]["request_id"]["StringValue"] == "x-1"
    assert stack.record("x-1") is None


def test_an_unserializable_result_fails_permanently(stack, start_worker):
    document = make_request(metadata={"outcome": "unserializable"})
    stack.forward([document])
    start_worker(RecordingModel())
    settled(stack, [document])
    assert stack.record(document["request_id"]).error_code == "RESULT_NOT_SERIALIZABLE"


# -- exactly once ------------------------------------------------------------------------------
def test_two_copies_of_100_requests_on_two_workers_each_run_exactly_once(stack, start_worker):
    documents = [make_request() for _ in range(100)]
    stack.forward(documents, copies=2)
    first, second = RecordingModel(delay=0.02), RecordingModel(delay=0.02)
    # A short lease: a copy held by the other worker is deferred until its lease has ended.
    start_worker(first, batch_size=10, invocation_timeout=2.0, lease_margin_seconds=1.0)
    start_worker(second, batch_size=10, invocation_timeout=2.0, lease_margin_seconds=1.0)
    settled(stack, documents, timeout=60)
    executions = {
        rid: first.executions().get(rid, 0) + second.executions().get(rid, 0)
        for rid in ids(documents)
    }
    assert set(executions.values()) == {1}
    assert all(stack.record(rid).status is RequestStatus.SUCCEEDED for rid in ids(documents))


def test_a_copy_of_a_finished_request_is_deleted_without_running(stack, start_worker):
    document = make_request()
    stack.forward([document])
    model = RecordingModel()
    start_worker(model)
    settled(stack, [document])
    stack.forward([document], record=False)  # the distributor's crash window: a late copy
    wait_until(lambda: stack.depth() == (0, 0), 10)
    time.sleep(0.3)
    assert model.executions() == {document["request_id"]: 1}


def test_a_request_held_under_another_workers_live_lease_waits_for_it(stack, start_worker):
    from orchestrator.worker.records import NewRecord, RunLedger

    document = make_request()
    stack.forward([document])
    other = RunLedger(stack.table_name, stack.client("dynamodb", PRIMARY), "other-worker")
    lease = other.claim(
        NewRecord(document["request_id"], "m", "h", "us-west-2", "normal", "test-model", "t"), 2.0
    ).lease
    model = RecordingModel()
    start_worker(model)
    time.sleep(1.0)
    assert model.executions() == {}  # never run while another worker's lease is live
    settled(stack, [document])  # the other worker "died": its lease ran out, claimed again
    record = stack.record(document["request_id"])
    assert record.fencing_token == lease.fencing_token + 1 and record.attempt == 2
    assert model.executions() == {document["request_id"]: 1}


def test_a_message_put_straight_on_the_queue_gets_a_record(stack, start_worker):
    document = make_request()
    stack.forward([document], record=False)
    start_worker(RecordingModel())
    settled(stack, [document])
    record = stack.record(document["request_id"])
    assert (
        record.status is RequestStatus.SUCCEEDED
        and record.message_id == f"master-{document['request_id']}"
    )
    assert record.expires_at > time.time()


# -- deadlines ---------------------------------------------------------------------------------
def test_a_request_past_its_deadline_is_expired_not_run_and_the_sender_told(stack, start_worker):
    old = make_request(
        metadata={"ttl_seconds": 5}, timestamp=iso_utc(time.time() - 60), topic=stack.topic_arn
    )
    fresh = make_request(metadata={"ttl_seconds": 600}, timestamp=iso_utc(time.time() - 60))
    stack.forward([old, fresh])
    model = RecordingModel()
    start_worker(model, max_wait=1.0)
    settled(stack, [old, fresh])
    record = stack.record(old["request_id"])
    assert (record.status, record.error_code) == (RequestStatus.EXPIRED, "REQUEST_EXPIRED")
    assert stack.record(fresh["request_id"]).status is RequestStatus.SUCCEEDED
    assert old["request_id"] not in model.executions()
    [note] = wait_until(stack.notifications, 10)
    assert (note["request_id"], note["status"]) == (old["request_id"], "EXPIRED")
    assert note["error"]["code"] == "REQUEST_EXPIRED"


def test_the_default_ttl_applies_without_metadata(stack, start_worker):
    document = make_request(timestamp=iso_utc(time.time() - 120))
    stack.forward([document])
    start_worker(RecordingModel(), request_ttl_seconds=60.0)
    settled(stack, [document])
    assert stack.record(document["request_id"]).status is RequestStatus.EXPIRED


# -- results and notifications -----------------------------------------------------------------
def test_small_results_are_inline_and_large_ones_in_s3(stack, start_worker):
    small, big = make_request(), make_request(metadata={"outcome": "big"})
    stack.forward([small, big])
    start_worker(RecordingModel(), inline_result_max_bytes=1024)
    settled(stack, [small, big])
    assert stack.record(small["request_id"]).result is not None
    record = stack.record(big["request_id"])
    key = f"results/{big['request_id']}.json"
    assert record.result is None and record.result_location == f"s3://{stack.bucket}/{key}"
    body = stack.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    assert json.loads(body) == {"values": list(range(20_000))}


def test_a_large_result_without_a_bucket_fails_permanently(stack, start_worker):
    document = make_request(metadata={"outcome": "big"})
    stack.forward([document])
    start_worker(RecordingModel(), inline_result_max_bytes=1024, results_bucket=None)
    settled(stack, [document])
    assert stack.record(document["request_id"]).error_code == "RESULT_TOO_LARGE"


def test_one_notification_on_success_and_one_on_failure(stack, start_worker):
    ok = make_request(topic=stack.topic_arn)
    bad = make_request(topic=stack.topic_arn, metadata={"outcome": "permanent"})
    silent = make_request()
    stack.forward([ok, bad, silent])
    start_worker(RecordingModel(), max_wait=1.0)
    settled(stack, [ok, bad, silent])
    received: list[dict[str, Any]] = []
    wait_until(lambda: received.extend(stack.notifications()) or len(received) >= 2, 10)
    notes = {n["request_id"]: n for n in received}
    assert set(notes) == {ok["request_id"], bad["request_id"]}
    assert notes[ok["request_id"]]["status"] == "SUCCEEDED"
    assert notes[ok["request_id"]]["result"] == {"echo": ok["request_id"], "attempt": 1}
    assert notes[bad["request_id"]]["status"] == "FAILED"
    assert notes[bad["request_id"]]["error"] == {"code": "BAD_INPUT", "message": "bad input"}
    timings = notes[ok["request_id"]]["timings"]
    assert timings["forwarded_at"] <= timings["started_at"] <= timings["finished_at"]


def test_a_notification_that_cannot_be_published_never_fails_the_request(stack, start_worker):
    document = make_request(topic="arn:aws:sns:us-east-1:123456789012:no-such-topic")
    stack.forward([document])
    handle = start_worker(RecordingModel())
    settled(stack, [document])
    assert stack.record(document["request_id"]).status is RequestStatus.SUCCEEDED
    metrics = handle.worker.metrics
    wait_until(lambda: metrics.notifications.labels("failed")._value.get() == 1, 10)


# -- invocation timeout --------------------------------------------------------------------------
def test_a_predict_past_the_invocation_timeout_fails_as_timed_out_and_never_overlaps(
    stack, start_worker
):
    document = make_request()
    stack.forward([document])

    class SlowOnce(RecordingModel):
        def predict(self, requests):
            slow = not self.batches
            with self.lock:
                self.running += 1
                self.max_concurrent["max"] = max(self.max_concurrent.get("max", 0), self.running)
            try:
                self.batches.append([r.request_id for r in requests])
                time.sleep(2.5 if slow else 0.0)
                return [self.one(r) for r in requests]
            finally:
                with self.lock:
                    self.running -= 1

    model = SlowOnce()
    handle = start_worker(model, invocation_timeout=1.0, max_attempts=3)
    wait_until(
        lambda: stack.record(document["request_id"]).error_code is None and len(model.batches) == 1,
        5,
    )
    wait_until(lambda: handle.worker._stuck_since is not None, 5)
    # Timed out, but the predict still runs: the lease is kept, nobody may claim it yet.
    record = stack.record(document["request_id"])
    assert record.status is RequestStatus.RUNNING and record.run_lease_expires_at > time.time()
    settled(stack, [document])
    record = stack.record(document["request_id"])
    assert record.status is RequestStatus.SUCCEEDED and record.attempt == 2
    assert model.max_concurrent["max"] == 1
    failures = handle.worker.metrics.failures.labels("INVOCATION_TIMEOUT")._value.get()
    assert failures == 1


# -- AWS failures and defects --------------------------------------------------------------------
class FlakyClient:
    """Wraps a client; `operation` raises EndpointConnectionError `times` times."""

    def __init__(self, real: Any, operation: str, times: int) -> None:
        self._real, self._operation, self.remaining = real, operation, times

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if name != self._operation:
            return attribute

        def call(**kwargs: Any) -> Any:
            if self.remaining > 0:
                self.remaining -= 1
                raise EndpointConnectionError(
                    endpoint_url="https://dynamodb.us-east-1.amazonaws.com"
                )
            return attribute(**kwargs)

        return call


def test_an_unreachable_table_delays_requests_and_loses_none(stack):
    documents = [make_request() for _ in range(3)]
    stack.forward(documents)
    clients = stack.clients()
    flaky = FlakyClient(clients.dynamodb, "update_item", times=3)
    model = RecordingModel()
    worker = Worker(
        stack.settings(max_wait=1.0),
        model,
        type(clients)(clients.sqs, flaky, clients.s3, clients.sns_for_region),
        retry_base_seconds=0.0,
        poll_seconds=1,
    )
    with RunningWorker(worker) as handle:
        settled(stack, documents, timeout=30)
        assert handle.exit_code is None  # an outage never stops the worker
    assert all(stack.record(rid).status is RequestStatus.SUCCEEDED for rid in ids(documents))
    assert model.executions() == dict.fromkeys(ids(documents), 1)
    assert worker.metrics.aws_errors.labels("dynamodb.claim")._value.get() == 3


def test_a_defect_stops_the_worker_with_status_1_and_hands_everything_back(stack, start_worker):
    documents = [make_request() for _ in range(3)]
    stack.forward(documents)
    model = RecordingModel()
    handle = start_worker(model, max_wait=1.0)

    def broken(outcomes):
        raise TypeError("a bug in settling")

    handle.worker.settler.settle = broken  # type: ignore[method-assign]
    wait_until(lambda: handle.exit_code is not None, 15)
    assert handle.exit_code == 1
    assert stack.depth() == (3, 0)  # all visible again at once: nothing lost
    for rid in ids(documents):
        record = stack.record(rid)
        assert record.status is RequestStatus.RUNNING and record.attempt == 0  # refunded
        assert record.run_lease_expires_at <= time.time() + 3  # released (with the short grace)


def test_a_message_caught_by_the_open_poll_after_sigterm_is_handed_back_at_once(stack):
    """An idle worker stops while its long poll is open; a request arriving then is received by
    that poll and made visible again at once, not hidden for the visibility timeout."""
    clients = stack.clients()
    poll_started = threading.Event()
    received: list[int] = []
    clients.sqs.meta.events.register(
        "before-call.sqs.ReceiveMessage", lambda **_: poll_started.set()
    )
    clients.sqs.meta.events.register(
        "after-call.sqs.ReceiveMessage",
        lambda parsed, **_: received.append(len(parsed.get("Messages", []))),
    )
    worker = Worker(
        stack.settings(poll_seconds=3, visibility_timeout=60), RecordingModel(), clients
    )
    assert worker.gatherer.poll_seconds == 3  # from the settings (--poll-seconds)
    with RunningWorker(worker) as handle:
        poll_started.clear()
        assert poll_started.wait(5)  # a long poll of up to 3 s is open now
        worker.request_stop()
        wait_until(lambda: not worker.ready, 2)  # stopping: the receiver knows from now on
        document = make_request()
        stack.forward([document])
        assert handle.stop() == 0
    assert sum(received) == 1  # the open poll got it ...
    assert stack.depth() == (1, 0)  # ... and it is visible again, not hidden for 60 s
    assert worker.metrics.requests.labels("handed_back")._value.get() == 1
    assert stack.record(document["request_id"]).status is RequestStatus.FORWARDED


def test_a_message_another_stopping_worker_handed_back_is_parked_not_passed_on(stack):
    """Ping-pong in a draining region: a message caught by the open poll after SIGTERM that was
    received before (another stopping worker handed it back) stays hidden until every poll open
    at that stop has ended, instead of feeding the next stopping worker's poll."""
    document = make_request()
    stack.forward([document])
    sqs = stack.client("sqs")
    [first] = sqs.receive_message(QueueUrl=stack.queue_url, VisibilityTimeout=60)["Messages"]
    clients = stack.clients()
    poll_started = threading.Event()
    clients.sqs.meta.events.register(
        "before-call.sqs.ReceiveMessage", lambda **_: poll_started.set()
    )
    worker = Worker(stack.settings(poll_seconds=2), RecordingModel(), clients)
    with RunningWorker(worker) as handle:
        poll_started.clear()
        assert poll_started.wait(5)
        worker.request_stop()
        wait_until(lambda: not worker.ready, 2)  # stopping: the receiver knows from now on
        sqs.change_message_visibility(  # the other worker's hand-back
            QueueUrl=stack.queue_url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
        )
        assert handle.stop() == 0
    stopped = time.monotonic()
    assert worker.metrics.requests.labels("handed_back")._value.get() == 1
    assert stack.depth() == (0, 1)  # parked for --poll-seconds + 1
    wait_until(lambda: stack.depth() == (1, 0), 6)
    assert time.monotonic() - stopped >= 1.0


@pytest.mark.parametrize("prefetch", [1, 2])
def test_prefetch_holds_that_many_claimed_batches_each_leased_for_its_wait(
    stack, start_worker, prefetch
):
    """While one batch runs, --prefetch-batches more are received and claimed. A batch that
    waits behind k others has k invocation timeouts added to its lease (less what the
    running one has used), so none needs renewing when it starts."""
    documents = [make_request() for _ in range(8)]
    stack.forward(documents)
    model = RecordingModel(delay=2.0)
    handle = start_worker(
        model,
        batch_size=2,
        max_wait=0.0,
        prefetch_batches=prefetch,
        invocation_timeout=10.0,
        lease_margin_seconds=15.0,
    )
    held = 2 * (1 + prefetch)
    wait_until(lambda: model.batches and stack.depth() == (8 - held, held), 10)
    time.sleep(0.5)  # the last claims land
    assert stack.depth() == (8 - held, held)  # and no more
    running = set(model.batches[0])
    leases = {
        d["request_id"]: stack.record(d["request_id"]).run_lease_expires_at
        for d in documents
        if stack.record(d["request_id"]).status is RequestStatus.RUNNING
    }
    assert len(leases) == held
    first = min(leases[r] for r in running)
    ahead = sorted(lease - first for r, lease in leases.items() if r not in running)
    # Batch 2 waits for the running predict (claimed as it started: ~10 s of its timeout
    # left); batch 3 for that and for batch 2 (10 s more).
    expected = [10, 10, 20, 20][: 2 * prefetch]
    assert ahead == pytest.approx(expected, abs=2.5)
    settled(stack, documents, timeout=40)
    assert handle.worker.metrics.lease_renewals._value.get() == 0
    assert sorted(r for batch in model.batches for r in batch) == sorted(
        d["request_id"] for d in documents
    )
