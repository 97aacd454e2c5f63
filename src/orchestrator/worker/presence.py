"""Publishing this worker's presence (`orchestrator.core.presence` has the contract).

At start, every `HEARTBEAT_SECONDS`, when it starts draining (``draining`` true: routing
counts it as no capacity at once) and when it stops (the item is deleted). A failed write is
logged and retried at the next beat: presence is advice for routing, never a reason to stop
serving.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from orchestrator.core import presence
from orchestrator.core.errors import AWS_ERRORS, one_line
from orchestrator.core.timefmt import iso_utc

logger = logging.getLogger(__name__)


class PresencePublisher:
    def __init__(
        self,
        client: Any,
        table: str,
        region: str,
        worker_id: str,
        capacity: int,
        busy: Callable[[], int],
        *,
        interval: float = presence.HEARTBEAT_SECONDS,
        ttl: float = presence.TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.table = table
        self.region = region
        self.worker_id = worker_id
        self.capacity = capacity
        self._busy = busy
        self.interval = interval
        self.ttl = ttl
        self._clock = clock
        self._started_at = iso_utc(clock())
        self._draining = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def current(self) -> presence.WorkerPresence:
        now = self._clock()
        return presence.WorkerPresence(
            region=self.region,
            worker_id=self.worker_id,
            capacity=self.capacity,
            busy=self._busy(),
            draining=self._draining,
            heartbeat_at=iso_utc(now),
            expires_at=math.ceil(now + self.ttl),
            started_at=self._started_at,
        )

    def publish(self) -> bool:
        with self._lock:  # a beat and a drain mark never interleave
            try:
                presence.publish(self._client, self.table, self.current())
            except AWS_ERRORS as exc:
                logger.warning("presence not written: %s", one_line(exc))
                return False
            return True

    def mark_draining(self) -> bool:
        self._draining = True
        return self.publish()

    def withdraw(self) -> bool:
        self._stop.set()
        with self._lock:
            try:
                presence.withdraw(self._client, self.table, self.region, self.worker_id)
            except AWS_ERRORS as exc:
                logger.warning("presence not withdrawn (it expires by itself): %s", one_line(exc))
                return False
            return True

    def start(self) -> PresencePublisher:
        self.publish()
        self._thread = threading.Thread(target=self._run, name="worker-presence", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish()

    def stop(self) -> None:
        self._stop.set()
