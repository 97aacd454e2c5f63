"""Heartbeats: keep every held message invisible while the worker holds it.

dramatiq_sqs's pattern: one ``ChangeMessageVisibilityBatch`` per 10 held messages of a queue
per interval (each message is extended on the queue it came from), the extension (the full
visibility timeout, V) longer than the interval. The beat runs every V/6 and extends the
messages whose visibility was last started V/6 or more ago, so each is extended before a
third of V has passed (at most V/6 + V/6) and never goes visible while held. A message
whose request has passed its invocation deadline is no longer extended: its request fails as
timed out.

A short batch (shorter than V/6) is therefore never extended at all: heartbeats cost
nothing on the happy path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from orchestrator.worker.lanes import Lanes
from orchestrator.worker.metrics import WorkerMetrics
from orchestrator.worker.queue import HeldMessages

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        queue: Lanes,
        held: HeldMessages,
        visibility_timeout: int,
        metrics: WorkerMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self._held = held
        self.visibility_timeout = visibility_timeout
        self.interval = visibility_timeout / 6
        self._metrics = metrics
        self._clock = clock

    def beat(self) -> int:
        """Extend the messages that are due (module docstring); returns how many were."""
        now = self._clock()
        due = self._held.due(now, refresh_after=self.interval)
        if not due:
            return 0
        try:
            failures = self._queue.change_visibility(
                [(held, self.visibility_timeout) for held in due]
            )
        finally:  # a settler releasing one of these waits for this call to have landed
            self._held.extended(due)
        failed = {failure.receipt_handle for failure in failures}
        for held in due:
            if held.receipt_handle not in failed:
                held.extended_at = now
        for failure in failures:
            logger.warning("heartbeat could not extend a message: %s", failure.reason)
        if self._metrics is not None:
            self._metrics.heartbeats.inc()
            self._metrics.heartbeat_failures.inc(len(failures))
        return len(due) - len(failures)
