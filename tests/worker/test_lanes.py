"""The high-priority lane: the high-first rule (the routing simulator's, same constant), what it
costs in SQS requests, and every per-message call going to the message's own queue."""

from __future__ import annotations

import itertools
import json
import time
from collections import deque

import pytest

from orchestrator.core.record import RequestStatus
from orchestrator.simulator import queues as simulated
from orchestrator.worker.lanes import HIGH, IDLE_LOOK_SECONDS, STANDARD, STANDARD_EVERY, Lanes
from orchestrator.worker.queue import Held
from worker.conftest import RecordingModel, make_request, wait_until

_ids = itertools.count()


class FakeQueue:
    """`count` messages waiting (None: endless); records each receive's (asked, wait)."""

    def __init__(self, url: str, lane: str, count: int | None = 0) -> None:
        self.url, self.lane, self.count = url, lane, count
        self.receives: list[tuple[int, int]] = []
        self.visibility: list[list[tuple[str, int]]] = []
        self.deleted: list[list[str]] = []

    def receive(self, max_messages: int, wait_seconds: int, visibility_timeout: int):
        self.receives.append((max_messages, wait_seconds))
        n = max_messages if self.count is None else min(self.count, max_messages)
        if self.count is not None:
            self.count -= n
        return [{"ReceiptHandle": f"{self.lane}-{next(_ids)}", "Body": "{}"} for _ in range(n)]

    def change_visibility(self, entries):
        self.visibility.append(list(entries))
        return []

    def delete(self, handles):
        self.deleted.append(list(handles))
        return []


def lanes(high: int | None, standard: int | None) -> tuple[Lanes, FakeQueue, FakeQueue]:
    h, s = FakeQueue("high-url", HIGH, high), FakeQueue("standard-url", STANDARD, standard)
    return Lanes(s, h), h, s  # type: ignore[arg-type]


def takes(subject: Lanes, n: int, size: int = 10) -> list[tuple[str, int]]:
    out = []
    for _ in range(n):
        queue, got = subject.receive(size, 20, 30)
        out.append((queue.lane, len(got)))
    return out


# -- the rule ------------------------------------------------------------------------------------
def test_the_constant_is_the_simulators():
    assert STANDARD_EVERY == simulated.STANDARD_EVERY == 4


def test_high_is_drained_first():
    subject, _, _ = lanes(high=25, standard=25)
    assert takes(subject, 6) == [
        (HIGH, 10),
        (HIGH, 10),
        (HIGH, 5),
        (STANDARD, 10),
        (STANDARD, 10),
        (STANDARD, 5),
    ]


def test_a_flood_of_high_work_leaves_standard_one_receive_in_four():
    subject, _, standard = lanes(high=None, standard=1_000)
    taken = [lane for lane, _ in takes(subject, 10 * STANDARD_EVERY)]
    assert taken[:STANDARD_EVERY] == [HIGH] * (STANDARD_EVERY - 1) + [STANDARD]
    assert taken.count(STANDARD) == 10
    assert all(wait == 0 for _, wait in standard.receives)  # its turn is a short poll


@pytest.mark.parametrize(
    ("high", "standard"), [(40, 40), (40, 0), (0, 40), (12, 40), (40, 7), (3, 3)]
)
def test_the_same_takes_as_the_simulated_worker(high, standard):
    """One message per take (the simulator's slot): the worker's lanes and the model's
    `next_request` take from the same queue every time."""
    queue = simulated.RegionQueue("r", 1)
    queue.high_waiting = deque(_sim(True) for _ in range(high))
    queue.waiting = deque(_sim(False) for _ in range(standard))
    consumer = simulated.Consumer()
    subject, _, _ = lanes(high=high, standard=standard)
    for _ in range(high + standard):
        expected = simulated.next_request(queue, consumer)
        lane, count = takes(subject, 1, size=1)[0]
        assert count == 1
        assert lane == (HIGH if expected.high else STANDARD)


def _sim(high: bool) -> simulated.Request:
    return simulated.Request(0, 0.0, True, high=high, permitted=frozenset({"r"}))


def test_standard_arriving_during_a_run_of_high_takes_is_never_taken_later_than_the_rule():
    subject, _, standard = lanes(high=None, standard=0)
    takes(subject, 5)  # a look at standard found nothing: high takes with nothing passed over
    standard.count = 3
    taken = [lane for lane, _ in takes(subject, STANDARD_EVERY)]
    assert STANDARD in taken


# -- cost ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("high", "standard", "per_request"),
    [(0, None, 0.3), (None, 0, 0.225), (None, None, 0.2)],
)
def test_sqs_requests_per_request_at_batch_10(high, standard, per_request):
    """Receives plus one DeleteMessageBatch per 10 (the happy path's SQS requests)."""
    subject, h, s = lanes(high=high, standard=standard)
    got = sum(count for _, count in takes(subject, 400))
    receives = len(h.receives) + len(s.receives)
    assert (receives + got / 10) / got == pytest.approx(per_request, abs=0.01)
    assert per_request <= 0.4


def test_an_idle_worker_looks_at_the_high_queue_every_few_seconds():
    subject, high, standard = lanes(high=0, standard=0)
    takes(subject, 3)
    assert high.receives == [(10, 0)] * 3
    assert standard.receives == [(10, IDLE_LOOK_SECONDS)] * 3


def test_without_a_high_queue_every_receive_is_the_callers():
    standard = FakeQueue("standard-url", STANDARD, 5)
    subject = Lanes(standard)  # type: ignore[arg-type]
    assert subject.receive(10, 20, 30)[1] and not subject.receive(10, 20, 30)[1]
    assert standard.receives == [(10, 20), (10, 20)]


def test_visibility_changes_and_deletes_go_to_each_messages_queue_per_queue():
    subject, high, standard = lanes(high=0, standard=0)

    def held(handle: str, url: str) -> Held:
        return Held({"ReceiptHandle": handle}, 0.0, 0.0, queue_url=url)

    messages = [held(f"h{i}", "high-url") for i in range(12)] + [held("s0", "standard-url")]
    subject.change_visibility([(m, 0) for m in messages])
    subject.delete(messages)
    assert [len(c) for c in high.visibility] == [12] and [len(c) for c in high.deleted] == [12]
    assert standard.visibility == [[("s0", 0)]] and standard.deleted == [["s0"]]


# -- end to end against moto ---------------------------------------------------------------------
@pytest.fixture
def high_url(stack) -> str:
    return stack.client("sqs").create_queue(QueueName=f"{stack.queue_url.rsplit('/', 1)[1]}-high")[
        "QueueUrl"
    ]


def test_a_worker_runs_high_priority_work_first_and_settles_each_in_its_queue(
    stack, start_worker, high_url
):
    standard = [make_request() for _ in range(20)]
    high = [make_request(metadata={"fail_times": 1}) for _ in range(20)]
    stack.forward(standard)
    stack.forward(high, url=high_url)
    model = RecordingModel(delay=0.2)
    handle = start_worker(model, batch_size=10, high_priority_queue_url=high_url)
    every = [d["request_id"] for d in standard + high]
    wait_until(lambda: all(stack.record(r).status.is_final for r in every), 30)
    high_ids = {d["request_id"] for d in high}
    assert set(model.batches[0]) <= high_ids and set(model.batches[1]) <= high_ids
    for request_id in every:
        record = stack.record(request_id)
        assert record.status is RequestStatus.SUCCEEDED
        assert record.attempt == (2 if request_id in high_ids else 1)  # retried in its queue
    wait_until(lambda: stack.depth() == (0, 0) and stack.depth(high_url) == (0, 0), 10)
    metrics = handle.worker.metrics
    assert metrics.received.labels(HIGH)._value.get() == 40  # 20, then their 20 retries
    assert metrics.received.labels(STANDARD)._value.get() == 20
    assert metrics.queue_wait.labels(HIGH)._sum.get() > 0


def test_heartbeats_extend_a_high_priority_message_on_its_own_queue(stack, start_worker, high_url):
    document = make_request()
    stack.forward([document], url=high_url)
    model = RecordingModel(delay=3.5)
    handle = start_worker(
        model, visibility_timeout=2, batch_size=1, high_priority_queue_url=high_url
    )
    wait_until(lambda: model.batches, 10)
    probe = stack.client("sqs")
    started = time.monotonic()
    while time.monotonic() - started < 3.0:  # past the 2 s timeout: only heartbeats hide it
        got = probe.receive_message(QueueUrl=high_url, WaitTimeSeconds=0, VisibilityTimeout=1)
        assert not got.get("Messages"), "a held high-priority message became visible"
        time.sleep(0.2)
    wait_until(lambda: stack.record(document["request_id"]).status.is_final, 10)
    assert model.executions() == {document["request_id"]: 1}
    metrics = handle.worker.metrics
    assert metrics.heartbeats._value.get() > 0
    assert metrics.heartbeat_failures._value.get() == 0  # each extension hit the right queue


def test_sigterm_hands_each_message_back_to_its_own_queue(stack, start_worker, high_url):
    """A running batch of both lanes that outlasts the drain, and a standard batch gathered
    ahead: every message is visible again at once, in the queue it came from."""
    standard = [make_request() for _ in range(10)]
    high = [make_request() for _ in range(5)]
    stack.forward(standard)
    stack.forward(high, url=high_url)
    model = RecordingModel(delay=3.0)
    handle = start_worker(
        model,
        batch_size=10,
        max_wait=1.0,
        drain_seconds=0.5,
        visibility_timeout=120,  # a message handed back to the wrong queue would stay hidden
        high_priority_queue_url=high_url,
    )
    wait_until(lambda: model.batches, 10)
    wait_until(lambda: len(handle.worker.held) == 15, 10)  # the rest gathered ahead
    high_ids = {d["request_id"] for d in high}
    assert high_ids < set(model.batches[0])  # the running batch holds both lanes
    assert handle.stop() == 0
    assert stack.depth(high_url) == (5, 0) and stack.depth() == (10, 0)
    back = {url: stack.drain(url) for url in (stack.queue_url, high_url)}
    assert {json.loads(m["Body"])["request_id"] for m in back[high_url]} == high_ids
    assert {json.loads(m["Body"])["request_id"] for m in back[stack.queue_url]} == {
        d["request_id"] for d in standard
    }
    assert handle.worker.metrics.requests.labels("handed_back")._value.get() == 15


def test_the_high_lane_needs_nothing_when_not_configured(stack, start_worker):
    handle = start_worker(RecordingModel())
    assert handle.worker.lanes.high is None
    assert [q.url for q in handle.worker.lanes.queues] == [stack.queue_url]


def test_a_take_starts_no_receive_once_stopping():
    subject, high, standard = lanes(high=0, standard=0)
    _, got = subject.receive(10, 20, 30, lambda: bool(high.receives))  # stops during the 1st
    assert got == [] and high.receives == [(10, 0)]
    assert standard.receives == []  # no long poll on standard after the stop
