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
        "id",
        "measured",
        "queued_at",
        "region",
        "service",
        "started",
        "state",
    )

    def __init__(self, request_id: int, arrived: float, measured: bool) -> None:
        self.id = request_id
        self.arrived = arrived
        self.measured = measured
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

    __slots__ = ("alive", "epoch", "holding")

    def __init__(self) -> None:
        self.alive = True
        self.epoch = 0
        self.holding: Request | None = None


class RegionQueue:
    """A region queue with its consumers, as SQS and the presence table would show them."""

    def __init__(self, name: str, consumers: int) -> None:
        self.name = name
        self.waiting: deque[Request] = deque()
        self.consumers = [Consumer() for _ in range(consumers)]
        self.idle: list[Consumer] = list(self.consumers)
        self.busy = 0
        self.invisible = 0
        """Messages hidden by their visibility timeout with no consumer behind them."""
        self.presence_expiry: list[float] = []
        """Lease ends of dead workers' presence records that were never deleted."""
        self.alive = consumers

    # what SQS shows
    @property
    def visible(self) -> int:
        return len(self.waiting)

    @property
    def in_flight(self) -> int:
        return self.busy + self.invisible

    def live_capacity(self, now: float) -> float:
        """Capacity the presence table reports: live workers and unexpired dead records."""
        if self.presence_expiry:
            self.presence_expiry = [t for t in self.presence_expiry if t > now]
        return float(self.alive + len(self.presence_expiry))


class SimSqs:
    """GetQueueAttributes over one simulated region queue, as the real client answers it."""

    def __init__(self, queue: RegionQueue) -> None:
        self.queue = queue

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(self.queue.visible),
                "ApproximateNumberOfMessagesNotVisible": str(self.queue.in_flight),
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
