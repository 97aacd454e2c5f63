"""The local SQS event source follows Lambda's rules (against a moto server, small queues)."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from localrun.poller import EventSourceConfig, InvalidBatchResponse, SqsPoller, failed_message_ids


def config(queue: Any, **overrides: Any) -> EventSourceConfig:
    settings: dict[str, Any] = {
        "queue_url": queue.url,
        "queue_arn": queue.arn,
        "region": "us-east-1",
        "function_name": "fn",
        "function_timeout": 5.0,
        "pollers": 1,
        "long_poll_seconds": 0,  # short polls: stop() returns at once
    }
    settings.update(overrides)
    return EventSourceConfig(**settings)


class Recorder:
    """A handler that records what it saw and answers with `respond(event)`."""

    def __init__(self, respond: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self._respond = respond
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            self.events.append(event)
            self.contexts.append(context)
        return self._respond(event) if self._respond else {"batchItemFailures": []}

    @property
    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for e in self.events for r in e["Records"]]


def send(sqs: Any, queue: Any, count: int) -> list[str]:
    return [
        sqs.send_message(QueueUrl=queue.url, MessageBody=f"message {i}")["MessageId"]
        for i in range(count)
    ]


# -- the partial batch response ---------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [None, {}, {"batchItemFailures": None}, {"batchItemFailures": []}],
)
def test_empty_responses_mean_success(response: Any) -> None:
    assert failed_message_ids(response, ["a", "b"]) == frozenset()


def test_listed_records_are_the_failures() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "b"}]}
    assert failed_message_ids(response, ["a", "b"]) == {"b"}


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemIdentifer": "a"}]},  # misspelt key
        {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
        {"batchItemFailures": "a"},
        "ok",
    ],
)
def test_invalid_responses_are_rejected(response: Any) -> None:
    with pytest.raises(InvalidBatchResponse):
        failed_message_ids(response, ["a", "b"])


# -- against a queue --------------------------------------------------------------------------


def test_records_and_context_are_shaped_like_lambdas(
    sqs: Any, make_queue: Any, wait_until: Any
) -> None:
    queue = make_queue()
    sent = sqs.send_message(
        QueueUrl=queue.url,
        MessageBody='{"hello": "world"}',
        MessageAttributes={
            "request_id": {"DataType": "String", "StringValue": "r-1"},
            "attempt": {"DataType": "Number", "StringValue": "1"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    handler = Recorder()
    with SqsPoller(sqs, config(queue, memory_mb=256), handler):
        assert wait_until(lambda: handler.records)
    (record,) = handler.records
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "md5OfMessageAttributes",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["messageId"] == sent["MessageId"]
    assert record["body"] == '{"hello": "world"}'
    assert record["md5OfBody"] == hashlib.md5(b'{"hello": "world"}').hexdigest()
    assert record["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue.arn
    assert record["awsRegion"] == "us-east-1"
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId"} <= set(record["attributes"])
    assert "ApproximateFirstReceiveTimestamp" in record["attributes"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["request_id"] == {
        "stringValue": "r-1",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["attempt"]["dataType"] == "Number"
    blob = record["messageAttributes"]["blob"]
    assert base64.b64decode(blob["binaryValue"]) == b"\x00\x01"
    (context,) = handler.contexts
    assert context.function_name == "fn"
    assert context.memory_limit_in_mb == "256"
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert context.aws_request_id
    assert 0 < context.get_remaining_time_in_millis() <= 5000


def test_success_deletes_the_batch(sqs: Any, make_queue: Any, wait_until: Any, depth: Any) -> None:
    queue = make_queue()
    send(sqs, queue, 5)
    handler = Recorder()
    with SqsPoller(sqs, config(queue), handler) as poller:
        assert wait_until(lambda: sum(i.deleted for i in poller.invocations) == 5)
    assert depth(sqs, queue.url) == (0, 0)


def test_partial_failure_deletes_only_the_successes(
    sqs: Any, make_queue: Any, wait_until: Any
) -> None:
    queue = make_queue(visibility_timeout=1)
    send(sqs, queue, 4)

    def fail_two(event: dict[str, Any]) -> Any:
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]}
                for r in event["Records"]
                if r["body"] in ("message 1", "message 3")
            ]
        }

    handler = Recorder(fail_two)
    poller = SqsPoller(sqs, config(queue, batching_window=0.5), handler).start()
    try:
        assert wait_until(lambda: poller.invocations)
        first = poller.invocations[0]
        assert len(first.message_ids) == 4
        assert first.deleted == 2 and len(first.failed) == 2 and first.error is None
        # The failures come back once their visibility timeout ends, received a second time.
        assert wait_until(lambda: len(handler.records) >= 6, timeout=5)
    finally:
        poller.stop()
    retried = handler.records[4:]
    assert sorted(r["body"] for r in retried) == ["message 1", "message 3"]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in retried} == {"2"}


@pytest.mark.parametrize(
    "respond",
    [
        pytest.param("raise", id="exception"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": "x"}]}, id="unknown-identifier"),
    ],
)
def test_whole_batch_fails_and_comes_back(
    sqs: Any, make_queue: Any, respond: Any, wait_until: Any, depth: Any
) -> None:
    queue = make_queue(visibility_timeout=1)
    send(sqs, queue, 3)

    def answer(event: dict[str, Any]) -> Any:
        if respond == "raise":
            raise RuntimeError("boom")
        return respond

    handler = Recorder(answer)
    poller = SqsPoller(sqs, config(queue, batching_window=0.5), handler).start()
    try:
        assert wait_until(lambda: poller.invocations)
        first = poller.invocations[0]
        assert first.deleted == 0 and first.error and len(first.failed) == 3
        assert depth(sqs, queue.url) == (0, 3)  # invisible until the visibility timeout ends
        assert wait_until(lambda: len(handler.records) >= 6, timeout=5)
    finally:
        poller.stop()
    assert {r["attributes"]["ApproximateReceiveCount"] for r in handler.records[3:6]} == {"2"}


def test_failures_are_ignored_without_report_batch_item_failures(
    sqs: Any, make_queue: Any, wait_until: Any
) -> None:
    queue = make_queue()
    send(sqs, queue, 2)
    handler = Recorder(
        lambda e: {"batchItemFailures": [{"itemIdentifier": e["Records"][0]["messageId"]}]}
    )
    with SqsPoller(sqs, config(queue, report_batch_item_failures=False), handler) as poller:
        assert wait_until(lambda: sum(i.deleted for i in poller.invocations) == 2)


def test_redrive_to_the_dead_letter_queue_after_max_receive_count(
    sqs: Any, make_queue: Any, wait_until: Any, depth: Any
) -> None:
    queue = make_queue(visibility_timeout=1, max_receive_count=2)
    (message_id,) = send(sqs, queue, 1)

    def always_raise(event: dict[str, Any]) -> Any:
        raise RuntimeError("poison")

    handler = Recorder(always_raise)
    with SqsPoller(sqs, config(queue), handler):
        moved = wait_until(lambda: depth(sqs, queue.dead_letter_url)[0] == 1, timeout=8)
    assert moved
    assert [r["attributes"]["ApproximateReceiveCount"] for r in handler.records] == ["1", "2"]
    assert depth(sqs, queue.url) == (0, 0)
    dead = sqs.receive_message(QueueUrl=queue.dead_letter_url, WaitTimeSeconds=0)["Messages"]
    assert dead[0]["MessageId"] == message_id


def test_batching_window_gathers_records_that_arrive_during_it(
    sqs: Any, make_queue: Any, wait_until: Any
) -> None:
    queue = make_queue()
    handler = Recorder()
    with SqsPoller(sqs, config(queue, batching_window=1.5), handler) as poller:
        first_sent = time.monotonic()
        for i in range(3):
            sqs.send_message(QueueUrl=queue.url, MessageBody=f"m{i}")
            time.sleep(0.3)
        assert wait_until(lambda: poller.invocations, timeout=5)
        (invocation,) = poller.invocations
    assert len(invocation.message_ids) == 3
    assert invocation.started - first_sent >= 1.2  # waited for the window, not the first record


def test_full_batch_does_not_wait_for_the_window(
    sqs: Any, make_queue: Any, wait_until: Any
) -> None:
    queue = make_queue()
    send(sqs, queue, 5)
    handler = Recorder()
    began = time.monotonic()
    with SqsPoller(sqs, config(queue, batch_size=5, batching_window=10), handler) as poller:
        assert wait_until(lambda: poller.invocations, timeout=5)
        assert poller.invocations[0].started - began < 3
    assert len(poller.invocations[0].message_ids) == 5


def test_without_a_window_each_receive_is_invoked_at_once(
    sqs: Any, make_queue: Any, wait_until: Any
) -> None:
    queue = make_queue()
    handler = Recorder()
    long_polls = config(queue, batching_window=0, long_poll_seconds=1)
    with SqsPoller(sqs, long_polls, handler) as poller:
        time.sleep(0.2)  # the poller is inside a long poll when the message arrives
        sqs.send_message(QueueUrl=queue.url, MessageBody="alone")
        sent = time.monotonic()
        assert wait_until(lambda: poller.invocations, timeout=5)
        assert poller.invocations[0].started - sent < 1.0
    assert len(poller.invocations[0].message_ids) == 1


def test_pollers_invoke_concurrently_up_to_their_number(
    sqs: Any, make_queue: Any, wait_until: Any
) -> None:
    queue = make_queue()
    send(sqs, queue, 12)
    running = 0
    most = 0
    lock = threading.Lock()

    def slow(event: dict[str, Any]) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.4)
        with lock:
            running -= 1
        return None

    handler = Recorder(slow)
    with SqsPoller(sqs, config(queue, pollers=3, batch_size=1), handler) as poller:
        assert wait_until(lambda: sum(i.deleted for i in poller.invocations) == 12, timeout=10)
    assert most == 3
    assert len({i.poller for i in poller.invocations}) == 3


def test_remaining_time_counts_down_from_the_function_timeout(
    sqs: Any, make_queue: Any, wait_until: Any
) -> None:
    queue = make_queue()
    send(sqs, queue, 1)
    seen: list[int] = []

    def measure(event: dict[str, Any], context: Any) -> Any:
        seen.append(context.get_remaining_time_in_millis())
        time.sleep(0.3)
        seen.append(context.get_remaining_time_in_millis())
        return None

    with SqsPoller(sqs, config(queue, function_timeout=2.0), measure) as poller:
        assert wait_until(lambda: poller.invocations)
    before, after = seen
    assert 1800 < before <= 2000
    assert 250 <= before - after < 600


def test_a_handler_past_its_timeout_fails_the_batch(
    sqs: Any, make_queue: Any, wait_until: Any, depth: Any
) -> None:
    queue = make_queue(visibility_timeout=5)
    send(sqs, queue, 2)

    def too_slow(event: dict[str, Any], context: Any) -> Any:
        time.sleep(0.4)
        return None

    with SqsPoller(sqs, config(queue, function_timeout=0.2, batching_window=0.3), too_slow) as p:
        assert wait_until(lambda: p.invocations)
    (invocation,) = p.invocations
    assert invocation.error and "timed out" in invocation.error
    assert invocation.deleted == 0
    assert depth(sqs, queue.url) == (0, 2)


def test_stop_is_prompt_and_idempotent(sqs: Any, make_queue: Any) -> None:
    queue = make_queue()
    poller = SqsPoller(sqs, config(queue, pollers=4, long_poll_seconds=1), Recorder()).start()
    began = time.monotonic()
    poller.stop()
    poller.stop()
    assert time.monotonic() - began < 3


NO_QUEUE = SimpleNamespace(url="http://127.0.0.1:1/123456789012/q", arn="arn:aws:sqs:::q")


class FailingClient:
    """An SQS client whose every receive raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.receives = 0

    def receive_message(self, **_: Any) -> Any:
        self.receives += 1
        raise self.error


def test_a_failed_receive_is_retried_after_a_pause(wait_until: Any) -> None:
    client = FailingClient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    poller = SqsPoller(client, config(NO_QUEUE), Recorder()).start()
    try:
        assert wait_until(lambda: client.receives >= 2, timeout=5)
        assert poller.failure is None
    finally:
        poller.stop()


def test_a_defect_in_the_poller_stops_it_and_is_kept(wait_until: Any) -> None:
    client = FailingClient(TypeError("receive_message() got an unexpected keyword"))
    poller = SqsPoller(client, config(NO_QUEUE, pollers=2), Recorder()).start()
    assert wait_until(lambda: poller.failure is not None, timeout=5)
    poller.stop()
    assert isinstance(poller.failure, TypeError)
    assert client.receives <= 2  # one per poller thread: never retried
