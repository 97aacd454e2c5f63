"""Simulated region queues, their GPU consumers and presence records, and the SQS face the
real `DepthCache` reads them through."""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import Executor, Future
from typing import Any


class Request:
    """One inference request's path through the model."""

    __slots__ = (
        "arrived",
        "entered",
        "high",
        "id",
        "measured",
        "permitted",
        "queued_at",
        "region",
        "service",
        "started",
        "state",
    )

    def __init__(
        self,
        request_id: int,
        arrived: float,
        measured: bool,
        *,
        high: bool = False,
        permitted: frozenset[str] = frozenset(),
    ) -> None:
        self.id = request_id
        self.arrived = arrived
        self.measured = measured
        self.high = high
        """A high-priority request: it waits in its region's high-priority queue."""
        self.permitted = permitted
        """The regions it may run in (`Placement.permitted`: placement and residency)."""
        self.service = 0.0
        """Seconds of GPU work it needs (drawn at arrival, the same for every strategy)."""
        self.state = 0
        """Where it is: see the states in `model`."""
        self.region = ""
        self.entered = math.nan
        """When it first reached a region queue: its wait starts here."""
        self.queued_at = math.nan
        """When it reached its current queue (a rescue resets it, as a new SQS message)."""
        self.started = math.nan
        """When its last service started (the one that finished, if it finished)."""


class Consumer:
    """One GPU worker slot. `epoch` changes when it dies, so its pending completion is void."""

    __slots__ = ("alive", "epoch", "holding", "streak")

    def __init__(self) -> None:
        self.alive = True
        self.epoch = 0
        self.holding: Request | None = None
        self.streak = 0
        """High-priority takes in a row while standard work waited (see `next_request`)."""


STANDARD_EVERY = 4
"""The worker policy the model assumes: of every `STANDARD_EVERY` messages a worker slot
takes while both of its region's queues have work, at least one is standard."""


def next_request(queue: RegionQueue, consumer: Consumer) -> Request | None:
    """The message a free worker slot takes next: high priority first, never starving standard.

    The rule (per worker slot, no coordination): take from the high-priority queue when it has
    a message, unless the standard queue has one too and the slot's last
    ``STANDARD_EVERY - 1`` takes were all high-priority ones made while standard work waited;
    then take standard. ``streak`` counts those takes; a standard take resets it, and so does a
    high-priority take while nothing standard waits (nobody was passed over).
    """
    if queue.high_waiting and (not queue.waiting or consumer.streak < STANDARD_EVERY - 1):
        consumer.streak = consumer.streak + 1 if queue.waiting else 0
        return queue.high_waiting.popleft()
    consumer.streak = 0
    return queue.waiting.popleft() if queue.waiting else None


class RegionQueue:
    """A region queue with its consumers, as SQS and the presence table would show them."""

    def __init__(self, name: str, consumers: int) -> None:
        self.name = name
        self.waiting: deque[Request] = deque()
        """The standard queue's waiting messages."""
        self.high_waiting: deque[Request] = deque()
        """The high-priority queue's waiting messages."""
        self.consumers = [Consumer() for _ in range(consumers)]
        self.idle: list[Consumer] = list(self.consumers)
        self.busy = 0
        self.invisible = 0
        """Messages hidden by their visibility timeout with no consumer behind them."""
        self.high_held = 0
        """Of `busy + invisible`: messages that came from the high-priority queue."""
        self.presence_expiry: list[float] = []
        """Lease ends of dead workers' presence records that were never deleted."""
        self.alive = consumers

    # what SQS shows (both queues together; `lane` tells them apart)
    @property
    def visible(self) -> int:
        return len(self.waiting) + len(self.high_waiting)

    @property
    def in_flight(self) -> int:
        return self.busy + self.invisible

    def lane(self, high: bool) -> deque[Request]:
        return self.high_waiting if high else self.waiting

    def figures(self, high: bool) -> tuple[int, int]:
        """(visible, in flight) of one of the region's two queues."""
        if high:
            return len(self.high_waiting), self.high_held
        return len(self.waiting), self.in_flight - self.high_held

    def live_capacity(self, now: float) -> float:
        """Capacity the presence table reports: live workers and unexpired dead records."""
        if self.presence_expiry:
            self.presence_expiry = [t for t in self.presence_expiry if t > now]
        return float(self.alive + len(self.presence_expiry))


HIGH_SUFFIX = "#high"
"""A region's high-priority queue URL in the model: the region's name and this suffix."""


class SimSqs:
    """GetQueueAttributes over one simulated region's two queues, as the real client answers."""

    def __init__(self, queue: RegionQueue) -> None:
        self.queue = queue

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        visible, in_flight = self.queue.figures(high=QueueUrl.endswith(HIGH_SUFFIX))
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesNotVisible": str(in_flight),
            }
        }


class InlineExecutor(Executor):
    """Runs each call at once in the caller's thread: the simulated clock does not move while
    a refresh runs, so parallel reads and sequential ones are the same thing here."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future
