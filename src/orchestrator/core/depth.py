"""Per-container cache of every region queue's depth and live capacity.

Refreshed at most every `ttl` seconds (times a random 1.0-1.2 so that many containers do not
refresh in step), all regions in parallel. A region whose refresh fails keeps its last
figures, marked stale; their age keeps growing, so the routing trusts them less and less.
Messages this container forwarded since a region's last refresh are added to its cached
depth, so one busy container does not pile onto the same region for a whole TTL.

Live capacity (proof of work) comes from an optional `presence` reader, called once per
refresh beside the queue reads: ``presence() -> {region: capacity of its live workers}``. A
region the reading leaves out has no live worker (capacity 0). When the reader fails, or none
is given, `RegionLoad.live_capacity` is None and the routing falls back to SQS in-flight
counts. A sudden fall of a region's capacity (by a quarter or more) is remembered as a
preemption, which `RegionLoad.since_drop` reports.

Regions with a high-priority queue (`high_queue_urls`) have both queues read at every refresh,
in parallel: the region's figures are the sums of both (the same workers consume both), and
`RegionLoad.high_visible` / `high_pending` tell the high-priority part apart. A region is
refreshed only when both of its reads succeed.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from orchestrator.core.errors import AWS_ERRORS
from orchestrator.core.routing import RegionLoad

logger = logging.getLogger(__name__)

DEPTH_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
JITTER = 0.2
CAPACITY_HALF_LIFE = 120.0
DROP_FRACTION = 0.25
"""A capacity that falls by at least this fraction (and by a whole worker) between two
refreshes is read as a preemption."""

PresenceReader = Callable[[], Mapping[str, float]]
"""``() -> {region: live capacity}``: the workers' published liveness, summed per region."""


@dataclass(slots=True)
class _RegionDepth:
    visible: int = 0
    in_flight: int = 0
    pending: int = 0
    peak_in_flight: float = 0.0
    peak_at: float = 0.0
    stale: bool = True
    measured_at: float = -math.inf
    live_capacity: float | None = None
    known_capacity: float | None = None
    dropped_at: float = -math.inf
    high_visible: int = 0
    high_pending: int = 0


@dataclass(frozen=True, slots=True)
class _Figures:
    visible: int
    in_flight: int
    high_visible: int = 0


class DepthCache:
    """Queue depth and live capacity per region, as the routing strategies need them."""

    def __init__(
        self,
        queue_urls: Mapping[str, str],
        clients: Mapping[str, Any],
        ttl: float,
        executor: Executor,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        presence: PresenceReader | None = None,
        high_queue_urls: Mapping[str, str] | None = None,
    ) -> None:
        """`high_queue_urls`: the regions' high-priority queues, read beside the standard
        ones (a region without one reads as having nothing high-priority waiting)."""
        self._queue_urls = dict(queue_urls)
        self._high_urls = {r: u for r, u in (high_queue_urls or {}).items() if r in queue_urls}
        self._clients = clients
        self._ttl = ttl
        self._executor = executor
        self._clock = clock
        self._rng = rng or random.Random()
        self._presence = presence
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
        now = self._clock()
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
                    live_capacity=depth.live_capacity,
                    age=max(0.0, now - depth.measured_at),
                    since_drop=max(0.0, now - depth.dropped_at),
                    high_visible=depth.high_visible,
                    high_pending=depth.high_pending,
                )
                for region, depth in self._depths.items()
            ]

    def refresh(self) -> None:
        """Read every region's depth, and the presence, in parallel.

        A failed queue read keeps that region's old figures, marked stale; a failed presence
        read leaves live capacity unknown until the next refresh.
        """
        self.refreshes += 1
        futures = {
            region: self._executor.submit(self._read, region, url)
            for region, url in self._queue_urls.items()
        }
        high_futures = {
            region: self._executor.submit(self._read, region, url)
            for region, url in self._high_urls.items()
        }
        live_future = self._executor.submit(self._presence) if self._presence else None
        results: dict[str, _Figures | None] = {}
        for region, future in futures.items():
            try:
                visible, in_flight = future.result()
                high = high_futures[region].result() if region in high_futures else (0, 0)
            except AWS_ERRORS as exc:  # AWS failed: keep the last figures (a defect raises)
                logger.warning("depth refresh failed for %s: %s", region, exc)
                results[region] = None
            else:
                results[region] = _Figures(visible + high[0], in_flight + high[1], high[0])
        live = _presence_result(live_future)
        now = self._clock()
        with self._lock:
            for region, figures in results.items():
                depth = self._depths[region]
                depth.live_capacity = None if live is None else float(live.get(region, 0.0))
                if figures is None:
                    depth.stale = True
                else:
                    self._measured(depth, figures, now)
                self._watch_capacity(depth, now)
            self._next_refresh = now + self._ttl * (1.0 + JITTER * self._rng.random())

    def record_forwarded(self, region: str, count: int, *, high: bool = False) -> None:
        """Count messages sent since the last refresh (they are not in the cached figures);
        `high`: sent to the region's high-priority queue."""
        with self._lock:
            depth = self._depths[region]
            depth.pending += count
            if high:
                depth.high_pending += count

    @staticmethod
    def _measured(depth: _RegionDepth, figures: _Figures, now: float) -> None:
        depth.visible, depth.in_flight = figures.visible, figures.in_flight
        depth.high_visible = figures.high_visible
        depth.pending = depth.high_pending = 0
        depth.stale = False
        depth.measured_at = now
        decayed = depth.peak_in_flight * 0.5 ** ((now - depth.peak_at) / CAPACITY_HALF_LIFE)
        depth.peak_in_flight = max(float(depth.in_flight), decayed)
        depth.peak_at = now

    @staticmethod
    def _watch_capacity(depth: _RegionDepth, now: float) -> None:
        """Remember a sudden fall of capacity as a preemption.

        Capacity is the live figure when presence answers; otherwise the in-flight count, but
        only while a backlog waits (then every consumer is busy, so in-flight is capacity).
        """
        if depth.live_capacity is not None:
            current: float | None = depth.live_capacity
        elif not depth.stale and depth.visible > 0:
            current = float(depth.in_flight)
        else:
            current = None
        if current is None:
            return
        before = depth.known_capacity
        if before is not None and before - current >= 1 and current <= before * (1 - DROP_FRACTION):
            depth.dropped_at = now
        depth.known_capacity = current

    def _read(self, region: str, url: str) -> tuple[int, int]:
        response = self._clients[region].get_queue_attributes(
            QueueUrl=url, AttributeNames=DEPTH_ATTRIBUTES
        )
        attributes = response.get("Attributes", {})
        return (
            int(attributes.get("ApproximateNumberOfMessages", 0)),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        )


def _presence_result(future: Future[Mapping[str, float]] | None) -> Mapping[str, float] | None:
    if future is None:
        return None
    try:
        return future.result()
    except AWS_ERRORS as exc:  # presence is an optimisation: fall back to the queue counts
        logger.warning("presence read failed; routing on queue counts: %s", exc)
        return None
