"""Handing work back: leases released and messages made visible at once, for another worker.

Whatever is handed back has its leases released first (`release_all`: the attempt refunded
for a batch that never started and at a shutdown, which also gives them a short grace,
`RELEASE_GRACE_SECONDS`, so the process is gone before anyone claims them), and then its
messages are released from `HeldMessages` and made visible (visibility 0), each on the lane it
came from.

`HandBack` also keeps the leases of the claimed messages the worker holds (`keep_lease`,
`forget_lease`), so that a shutdown releases them with their messages (`leases_of`). They are
guarded by the worker's lock, shared so that a shutdown takes them together with an overrunning
predict's.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Executor

from orchestrator.core.errors import AWS_ERRORS, one_line
from orchestrator.core.request import readable_request_id
from orchestrator.worker.batch import Item
from orchestrator.worker.lanes import Lanes
from orchestrator.worker.metrics import WorkerMetrics
from orchestrator.worker.queue import Held, HeldMessages
from orchestrator.worker.records import FencedError, Lease, RunLedger

logger = logging.getLogger(__name__)

RELEASE_GRACE_SECONDS = 2.0
"""A lease released by a shutdown ends this much later: the process exits first."""


class HandBack:
    """Gives leases and messages back for the worker (module docstring)."""

    def __init__(
        self,
        *,
        ledger: RunLedger,
        io: Executor,
        held: HeldMessages,
        lanes: Lanes,
        metrics: WorkerMetrics,
        park_seconds: int,
        lock: threading.Condition,
    ) -> None:
        self.ledger = ledger
        self._io = io
        self.held = held
        self.lanes = lanes
        self.metrics = metrics
        self.park_seconds = park_seconds
        self._lock = lock
        self._leases: dict[str, Lease] = {}

    def keep_lease(self, held: Held, lease: Lease) -> None:
        with self._lock:
            self._leases[held.receipt_handle] = lease

    def forget_lease(self, held: Held) -> None:
        with self._lock:
            self._leases.pop(held.receipt_handle, None)

    def leases_of(self, held: Sequence[Held]) -> list[Lease]:
        """The leases kept for these messages."""
        with self._lock:
            leases = self._leases
            return [leases[h.receipt_handle] for h in held if h.receipt_handle in leases]

    def unstarted(self, items: list[Item], why: str) -> None:
        """Claimed but never started: end the leases (the attempt does not count), then
        make the messages visible at once."""
        self.release_all(
            [item.lease for item in items if item.lease is not None], grace=0.0, refund=True
        )
        self.messages(
            [held for item in items for held in (item.held, *(f.held for f in item.followers))],
            why,
        )

    def release_all(self, leases: list[Lease], *, grace: float, refund: bool = False) -> None:
        def release(lease: Lease) -> None:
            try:
                self.ledger.release(lease, grace=grace, refund_attempt=refund)
            except FencedError:
                pass  # final already, or someone else's now
            except AWS_ERRORS as exc:
                logger.warning(
                    "lease of %s not released (it runs out by itself): %s",
                    lease.request_id,
                    one_line(exc),
                )

        for future in [self._io.submit(release, lease) for lease in leases]:
            future.result()

    def messages(self, batch: Sequence[Held], why: str, *, after_stop: bool = False) -> None:
        """Make the messages visible again at once. `after_stop`: a poll that was open when the
        stop began brought them; one already received before (most likely handed back by
        another stopping worker) is parked until every poll open at its stop has ended, so
        the stopping workers of a draining region do not pass it around, each receive
        counting toward the queue's maxReceiveCount."""
        if not batch:
            return
        park = self.park_seconds
        delays = [(h, park if after_stop and receive_count(h) > 1 else 0) for h in batch]
        self.held.release(batch)  # first: no heartbeat may re-hide them after the change
        failures = self.lanes.change_visibility(delays)
        for failed in failures:
            logger.warning("hand-back failed (visible again after the timeout): %s", failed.reason)
        for held in batch:
            self.forget_lease(held)
        self.metrics.requests.labels("handed_back").inc(len(batch))
        logger.info(
            "handed back %d messages (%s)",
            len(batch),
            why,
            extra={
                "request_ids": [request_id_of(h) for h in batch],
                "reason": why,
                "lanes": dict(Counter(h.lane for h in batch)),
                "parked": sum(1 for _, delay in delays if delay),
            },
        )


def request_id_of(held: Held) -> str | None:
    """For logs: the routing attribute, else whatever the body says."""
    attributes = held.message.get("MessageAttributes") or {}
    value = (attributes.get("request_id") or {}).get("StringValue")
    return str(value) if value else readable_request_id(str(held.message.get("Body", "")))


def receive_count(held: Held) -> int:
    """SQS's ApproximateReceiveCount of the message (1 on its first receive)."""
    attributes = held.message.get("Attributes") or {}
    try:
        return int(attributes.get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1
