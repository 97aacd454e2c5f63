"""Per-container cache of every region queue's depth.

Refreshed at most every `ttl` seconds (times a random 1.0-1.2 so that many containers do not
refresh in step), all regions in parallel. A region whose refresh fails keeps its last
figures, marked stale. Messages this container forwarded since a region's last refresh are
added to its cached depth, so one busy container does not pile onto the same region for a
whole TTL.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from orchestrator.core.routing import RegionLoad

logger = logging.getLogger(__name__)

DEPTH_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
JITTER = 0.2
CAPACITY_HALF_LIFE = 120.0


@dataclass(slots=True)
class _RegionDepth:
    visible: int = 0
    in_flight: int = 0
    pending: int = 0
    peak_in_flight: float = 0.0
    peak_at: float = 0.0
    stale: bool = True


class DepthCache:
    """Queue depth per region, as the routing strategies need it."""

    def __init__(
        self,
        queue_urls: Mapping[str, str],
        clients: Mapping[str, Any],
        ttl: float,
        executor: Executor,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._queue_urls = dict(queue_urls)
        self._clients = clients
        self._ttl = ttl
        self._executor = executor
        self._clock = clock
        self._rng = rng or random.Random()
        self._depths = {region: _RegionDepth() for region in self._queue_urls}
        self._next_refresh = float("-inf")
        self._lock = threading.Lock()
        self.refreshes = 0

    def snapshot(
        self, is_available: Callable[[str], bool] = lambda _region: True
    ) -> list[RegionLoad]:
        """Current loads (refreshing first when due); `is_available` marks cooled-down regions."""
        if self._clock() >= self._next_refresh:
            self.refresh()
        with self._lock:
            return [
                RegionLoad(
                    region=region,
                    visible=depth.visible,
                    in_flight=depth.in_flight,
                    pending=depth.pending,
                    capacity_hint=depth.peak_in_flight,
                    available=is_available(region),
                    stale=depth.stale,
                )
                for region, depth in self._depths.items()
            ]

    def refresh(self) -> None:
        """Read every region's depth in parallel; failures keep the old figures, marked stale."""
        self.refreshes += 1
        futures = {region: self._executor.submit(self._read, region) for region in self._queue_urls}
        results: dict[str, tuple[int, int] | None] = {}
        for region, future in futures.items():
            try:
                results[region] = future.result()
            except Exception as exc:  # any failure: keep the last figures
                logger.warning("depth refresh failed for %s: %s", region, exc)
                results[region] = None
        now = self._clock()
        with self._lock:
            for region, figures in results.items():
                depth = self._depths[region]
                if figures is None:
                    depth.stale = True
                    continue
                depth.visible, depth.in_flight = figures
                depth.pending = 0
                depth.stale = False
                decayed = depth.peak_in_flight * 0.5 ** ((now - depth.peak_at) / CAPACITY_HALF_LIFE)
                depth.peak_in_flight = max(float(depth.in_flight), decayed)
                depth.peak_at = now
            self._next_refresh = now + self._ttl * (1.0 + JITTER * self._rng.random())

    def record_forwarded(self, region: str, count: int) -> None:
        """Count messages sent since the last refresh (they are not in the cached figures)."""
        with self._lock:
            self._depths[region].pending += count

    def _read(self, region: str) -> tuple[int, int]:
        response = self._clients[region].get_queue_attributes(
            QueueUrl=self._queue_urls[region], AttributeNames=DEPTH_ATTRIBUTES
        )
        attributes = response.get("Attributes", {})
        return (
            int(attributes.get("ApproximateNumberOfMessages", 0)),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        )
