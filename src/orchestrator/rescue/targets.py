"""What one run shares between the regions it rescues concurrently: the message budget and
the routing view of the healthy regions (with this run's own sends counted as pending)."""

from __future__ import annotations

import random
import threading
from collections.abc import Collection, Iterable, Mapping

from orchestrator.core.routing import RegionLoad
from orchestrator.core.stranding import rescue_targets


class Budget:
    """At most `limit` messages received in one run, across all regions (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        with self._lock:
            granted = max(0, min(wanted, self._left))
            self._left -= granted
            return granted

    def give_back(self, unused: int) -> None:
        with self._lock:
            self._left += max(0, unused)

    @property
    def left(self) -> int:
        return self._left


class TargetPicker:
    """Chooses the region each rescued message goes to (thread-safe).

    `avoid`: regions that must not receive rescued work this run (stranded, or unreadable).
    A region whose send fails is added to it for the rest of the run.
    """

    def __init__(
        self,
        loads: Iterable[RegionLoad],
        *,
        strategy: str,
        max_depth: int,
        avoid: Collection[str] = (),
        rng: random.Random | None = None,
    ) -> None:
        self._loads = {load.region: load for load in loads}
        self._strategy = strategy
        self._max_depth = max_depth
        self._avoid = set(avoid)
        self._rng = rng or random.Random()
        self._lock = threading.Lock()

    def pick(
        self, source: str, count: int, permitted: Collection[str] | None = None
    ) -> list[str | None]:
        """A region per message (None: nowhere to go), counted as pending at once."""
        with self._lock:
            chosen = rescue_targets(
                source,
                list(self._loads.values()),
                count,
                strategy=self._strategy,
                rng=self._rng,
                max_depth=self._max_depth,
                avoid=self._avoid,
                permitted=permitted,
            )
            for region in chosen:
                if region is not None:
                    self._loads[region] = self._loads[region].plus(1)
            return chosen

    def has_target(self, source: str) -> bool:
        """Whether a message of `source` could go anywhere now (nothing is counted)."""
        with self._lock:
            probe = rescue_targets(
                source,
                list(self._loads.values()),
                1,
                strategy=self._strategy,
                rng=random.Random(0),
                max_depth=self._max_depth,
                avoid=self._avoid,
            )
        return probe[0] is not None

    def mark_failed(self, region: str) -> None:
        with self._lock:
            self._avoid.add(region)

    def pending(self) -> Mapping[str, int]:
        with self._lock:
            return {region: load.pending for region, load in self._loads.items()}
