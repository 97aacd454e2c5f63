"""Heartbeats keep held messages invisible: extended before a third of the visibility timeout,
one ChangeMessageVisibilityBatch per 10, never past a request's invocation deadline."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from orchestrator.worker.batch import Item
from orchestrator.worker.heartbeat import Heartbeat
from orchestrator.worker.lanes import Lanes
from orchestrator.worker.metrics import WorkerMetrics
from orchestrator.worker.outcome import Action, Outcome
from orchestrator.worker.queue import Held, HeldMessages, QueueFailure, WorkQueue
from orchestrator.worker.settle import Settler
from worker.conftest import RecordingModel, make_request, wait_until


class RecordingQueue:
    def __init__(self) -> None:
        self.calls: list[list[tuple[str, int]]] = []
        self.fail: set[str] = set()

    def change_visibility(self, entries):
        entries = [(held.receipt_handle, seconds) for held, seconds in entries]
        self.calls.append(entries)
        return [
            QueueFailure(h, "ReceiptHandleIsInvalid: gone") for h, _ in entries if h in self.fail
        ]


def held_at(handle: str, t: float) -> Held:
    return Held({"ReceiptHandle": handle, "MessageId": handle}, received_at=t, extended_at=t)


def test_only_messages_due_are_extended_and_never_later_than_a_third():
    now = [0.0]
    queue, held = RecordingQueue(), HeldMessages()
    beat = Heartbeat(queue, held, visibility_timeout=30, clock=lambda: now[0])  # type: ignore[arg-type]
    old, fresh = held_at("old", 0.0), held_at("fresh", 4.0)
    held.add([old, fresh])
    now[0] = 5.0
    assert beat.beat() == 1  # "old" is 5 s (= V/6) old: due; "fresh" is 1 s old
    assert queue.calls == [[("old", 30)]]
    # Beats every V/6 = 5 s: a message is extended at most 10 s (a third of V) after the last.
    last_extension = {"old": 5.0, "fresh": 4.0}
    for tick in range(2, 20):
        now[0] = tick * 5.0
        beat.beat()
        for handle, _ in queue.calls[-1] if queue.calls else []:
            assert now[0] - last_extension[handle] <= 10.0
            last_extension[handle] = now[0]


def test_a_request_past_its_invocation_deadline_is_no_longer_extended():
    now = [0.0]
    queue, held = RecordingQueue(), HeldMessages()
    beat = Heartbeat(queue, held, visibility_timeout=30, clock=lambda: now[0])  # type: ignore[arg-type]
    message = held_at("m", 0.0)
    message.stop_extending_at = 12.0
    held.add([message])
    now[0] = 10.0
    assert beat.beat() == 1
    now[0] = 20.0
    assert beat.beat() == 0


def test_a_failed_extension_is_tried_again_at_the_next_beat():
    now = [0.0]
    queue, held = RecordingQueue(), HeldMessages()
    beat = Heartbeat(queue, held, visibility_timeout=30, clock=lambda: now[0])  # type: ignore[arg-type]
    held.add([held_at("m", 0.0)])
    queue.fail = {"m"}
    now[0] = 6.0
    assert beat.beat() == 0
    queue.fail = set()
    now[0] = 7.0
    assert beat.beat() == 1


def test_many_held_messages_take_one_call_per_ten(stack):
    sqs = stack.client("sqs")
    queue = WorkQueue(stack.queue_url, sqs)
    stack.forward([make_request() for _ in range(23)])
    messages = []
    while len(messages) < 23:
        messages += queue.receive(10, 0, 30)
    held = HeldMessages()
    held.add(Held(m, received_at=0.0, extended_at=0.0) for m in messages)
    calls = []
    sqs.meta.events.register(
        "before-call.sqs.ChangeMessageVisibilityBatch", lambda **kw: calls.append(1)
    )
    beat = Heartbeat(Lanes(queue), held, visibility_timeout=30, clock=lambda: 100.0)
    assert beat.beat() == 23
    assert len(calls) == 3


def test_a_batch_longer_than_the_visibility_timeout_stays_invisible(stack, start_worker):
    """Visibility 2 s, a predict of 3.5 s: without heartbeats another consumer would get it."""
    model = RecordingModel(delay=3.5)
    request = make_request()
    stack.forward([request])
    start_worker(model, visibility_timeout=2, batch_size=1)
    wait_until(lambda: model.batches, 10)
    probe = stack.client("sqs")
    started = time.monotonic()
    while time.monotonic() - started < 3.0:  # the whole predict, well past the 2 s timeout
        got = probe.receive_message(
            QueueUrl=stack.queue_url, WaitTimeSeconds=0, VisibilityTimeout=1
        )
        assert not got.get("Messages"), "a held message became visible during its batch"
        time.sleep(0.2)
    wait_until(lambda: stack.record(request["request_id"]).status.is_final, 10)
    assert model.executions() == {request["request_id"]: 1}


class GatedQueue:
    """Records each visibility change when it *lands*; the heartbeat's (visibility 30) is held
    in flight until `gate` opens, as a slow SQS call would be."""

    def __init__(self) -> None:
        self.landed: list[tuple[str, int]] = []
        self.in_flight = threading.Event()
        self.gate = threading.Event()

    def change_visibility(self, entries):
        entries = [(held.receipt_handle, seconds) for held, seconds in entries]
        if any(seconds == 30 for _, seconds in entries):
            self.in_flight.set()
            self.gate.wait(5)
        self.landed += entries
        return []

    def delete(self, handles):
        return []


def test_a_heartbeat_in_flight_never_overrides_a_retrys_backoff():
    """The heartbeat picked the message as due; the settler then sets a 2 s backoff. The
    heartbeat's 30 s must land first, the backoff last (it used to be the other way)."""
    now = [0.0]
    queue, held = GatedQueue(), HeldMessages()
    message = held_at("m", 0.0)
    held.add([message])
    now[0] = 10.0
    beat = Heartbeat(queue, held, visibility_timeout=30, clock=lambda: now[0])  # type: ignore[arg-type]
    beating = threading.Thread(target=beat.beat)
    beating.start()
    assert queue.in_flight.wait(5)
    settler = Settler(
        ledger=None,  # type: ignore[arg-type]
        queue=queue,  # type: ignore[arg-type]
        held=held,
        results=None,  # type: ignore[arg-type]
        notifier=None,  # type: ignore[arg-type]
        dead_letters=None,
        io=ThreadPoolExecutor(2),
        notify_pool=ThreadPoolExecutor(1),
        metrics=WorkerMetrics(),
        lease_seconds=30,
        forget_lease=lambda _held: None,
        closed=threading.Event(),
    )
    item = Item(message, body="{}")
    settling = threading.Thread(
        target=settler.settle, args=([Outcome(item, Action.RETRY, delay=2)],)
    )
    settling.start()
    time.sleep(0.3)  # the settler reaches its visibility change while the beat is in flight
    queue.gate.set()
    beating.join(5)
    settling.join(5)
    assert queue.landed == [("m", 30), ("m", 2)]
    assert message not in held
