"""Filling a batch: up to --batch-size, or --max-wait after the first message; long polls."""

from __future__ import annotations

from collections import deque
from typing import Any

from orchestrator.worker.batching import BatchGatherer
from orchestrator.worker.lanes import Lanes
from orchestrator.worker.queue import HeldMessages


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedQueue:
    """Each receive returns the next scripted list of messages (and takes `cost` seconds)."""

    def __init__(self, clock: FakeClock, script: list[int], cost: float = 0.01) -> None:
        self.url = "scripted"
        self.lane = "standard"
        self.clock = clock
        self.script = deque(script)
        self.cost = cost
        self.calls: list[tuple[int, int, int]] = []
        self.counter = 0

    def receive(
        self, max_messages: int, wait_seconds: int, visibility_timeout: int
    ) -> list[dict[str, Any]]:
        self.calls.append((max_messages, wait_seconds, visibility_timeout))
        count = min(self.script.popleft() if self.script else 0, max_messages)
        self.clock.now += self.cost if count or not wait_seconds else wait_seconds
        out = []
        for _ in range(count):
            self.counter += 1
            out.append(
                {
                    "MessageId": f"m{self.counter}",
                    "ReceiptHandle": f"rh{self.counter}",
                    "Body": "{}",
                }
            )
        return out


def gatherer(
    queue: ScriptedQueue, clock: FakeClock, held: HeldMessages, size: int, max_wait: float
) -> BatchGatherer:
    return BatchGatherer(
        Lanes(queue),  # type: ignore[arg-type]
        held,
        batch_size=size,
        max_wait=max_wait,
        visibility_timeout=30,
        clock=clock,
        sleep=clock.sleep,  # type: ignore[arg-type]
    )


def test_the_first_receive_long_polls_and_a_full_receive_fills_the_batch():
    clock, held = FakeClock(), HeldMessages()
    queue = ScriptedQueue(clock, [10])
    batch = gatherer(queue, clock, held, 10, 0.5).gather(lambda: False)
    assert len(batch) == 10
    assert queue.calls == [(10, 20, 30)]  # one receive: 20 s long poll, the worker's own visibility
    assert len(held) == 10  # held (heartbeats, hand-back) from the moment they arrive


def test_a_batch_larger_than_ten_takes_several_receives():
    clock, held = FakeClock(), HeldMessages()
    queue = ScriptedQueue(clock, [10, 10, 10])
    batch = gatherer(queue, clock, held, 25, 1.0).gather(lambda: False)
    assert len(batch) == 25
    assert [c[0] for c in queue.calls] == [10, 10, 5]


def test_max_wait_below_a_second_sleeps_out_the_wait_then_looks_once_more():
    clock, held = FakeClock(), HeldMessages()
    queue = ScriptedQueue(clock, [1, 0, 2])
    batch = gatherer(queue, clock, held, 10, 0.2).gather(lambda: False)
    assert len(batch) == 3
    # first: long poll; then a short poll came back empty; sleep out the 0.2 s; one last look
    assert [c[1] for c in queue.calls] == [20, 0, 0]
    assert clock.now >= 100.0 + 0.2


def test_max_wait_of_seconds_long_polls_for_the_rest():
    clock, held = FakeClock(), HeldMessages()
    queue = ScriptedQueue(clock, [1, 1, 0])
    batch = gatherer(queue, clock, held, 10, 3.0).gather(lambda: False)
    assert len(batch) == 2
    waits = [c[1] for c in queue.calls]
    assert waits[0] == 20 and waits[1] in (2, 3) and all(w < 3 for w in waits[2:])


def test_max_wait_zero_takes_what_the_first_receive_brought():
    clock, held = FakeClock(), HeldMessages()
    queue = ScriptedQueue(clock, [3, 5])
    assert len(gatherer(queue, clock, held, 10, 0.0).gather(lambda: False)) == 3
    assert len(queue.calls) == 1


def test_nothing_is_received_once_stopping():
    clock, held = FakeClock(), HeldMessages()
    queue = ScriptedQueue(clock, [3])
    assert gatherer(queue, clock, held, 10, 1.0).gather(lambda: True) == []
    assert queue.calls == []


def test_a_stop_during_the_last_wait_receives_nothing_more():
    """The wait before the last look is where a stop wakes the receiver: no receive follows."""
    clock, held = FakeClock(), HeldMessages()
    queue = ScriptedQueue(clock, [3, 0, 4])
    stopped = [False]
    gather = gatherer(queue, clock, held, 10, 0.5)

    def sleep(seconds: float) -> None:
        stopped[0] = True  # SIGTERM arrives while sleeping out the wait

    gather._sleep = sleep
    assert len(gather.gather(lambda: stopped[0])) == 3
    assert len(queue.calls) == 2  # the first receive and the empty one; no last look
