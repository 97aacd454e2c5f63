"""A predict that overran ``--invocation-timeout``: the leases it still holds, until it returns.

Its requests fail as timed out at once (`Predictor`), but the model thread is still running
them: the leases of those that will be retried are kept (the "zombies"), renewed by every
heartbeat that finds one close to its end, so another worker never runs the same request while
this one physically still does. When the predict returns, they are released (no grace: it is
over). Meanwhile the worker receives nothing (`stuck_since`), and a shutdown takes them with
the other leases it releases (`take`).

The state is guarded by the worker's lock, shared so that a shutdown takes these leases and
the claimed ones together.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from orchestrator.core.errors import AWS_ERRORS, one_line
from orchestrator.worker.handback import HandBack
from orchestrator.worker.metrics import WorkerMetrics
from orchestrator.worker.outcome import Action, Outcome
from orchestrator.worker.records import FencedError, Lease, RunLedger
from orchestrator.worker.settle import LEASE_RESERVE_SECONDS

logger = logging.getLogger(__name__)


class Overrun:
    """The overrunning predict's leases (module docstring)."""

    def __init__(
        self,
        *,
        lock: threading.Condition,
        ledger: RunLedger,
        hand_back: HandBack,
        metrics: WorkerMetrics,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = lock
        self.ledger = ledger
        self.hand_back = hand_back
        self.metrics = metrics
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._zombies: dict[str, Lease] = {}
        # When the running predict overran (monotonic); None while the model thread is free.
        self.stuck_since: float | None = None

    def began(self, outcomes: list[Outcome], future: Future[Any]) -> None:
        """The predict of `future` overran: keep its retried requests' leases until it
        returns."""
        with self._lock:
            self.stuck_since = self._monotonic()
            for outcome in outcomes:
                if outcome.action is Action.RETRY and outcome.item.lease is not None:
                    self._zombies[outcome.item.lease.request_id] = outcome.item.lease
        future.add_done_callback(lambda _f: self._ended())

    def _ended(self) -> None:
        with self._lock:
            zombies = list(self._zombies.values())
            self._zombies.clear()
            self.stuck_since = None
        logger.warning("the overrunning predict returned; its leases are released")
        self.hand_back.release_all(zombies, grace=0.0)

    def take(self) -> list[Lease]:
        """The leases still kept, now the caller's to release."""
        with self._lock:
            zombies = list(self._zombies.values())
            self._zombies.clear()
        return zombies

    def renew(self, interval: float) -> None:
        """Renew the kept leases that would end before the heartbeat after next (`interval`
        apart) could renew them; drop those another worker took over."""
        with self._lock:
            zombies = list(self._zombies.values())
        soon = self._clock() + 2 * interval + LEASE_RESERVE_SECONDS
        for lease in zombies:
            if lease.expires_at > soon:
                continue
            try:
                renewed = self.ledger.renew(lease, self.lease_seconds)
            except FencedError:
                renewed = None
            except AWS_ERRORS as exc:
                logger.warning("lease renewal of %s failed: %s", lease.request_id, one_line(exc))
                continue
            self.metrics.lease_renewals.inc()
            with self._lock:
                if lease.request_id in self._zombies:
                    if renewed is None:
                        del self._zombies[lease.request_id]
                    else:
                        self._zombies[lease.request_id] = renewed
