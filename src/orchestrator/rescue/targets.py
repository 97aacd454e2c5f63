"""What one run shares between the regions it rescues concurrently: the message budget and
the routing view of the healthy regions (with this run's own sends counted as pending).

Standard messages go where `orchestrator.core.stranding.rescue_targets` sends them (the
routing strategy); high-priority ones, among the same candidates, to the shortest
high-priority wait (`orchestrator.core.routing.assign_shortest_wait`), as the distributor
sends them."""

from __future__ import annotations

import random
import threading
from collections.abc import Collection, Iterable, Mapping

from orchestrator.core.routing import RegionLoad, assign_shortest_wait
from orchestrator.core.stranding import has_consumer_proof, looks_stalled, rescue_targets


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
        self,
        source: str,
        count: int,
        permitted: Collection[str] | None = None,
        *,
        high: bool = False,
    ) -> list[str | None]:
        """A region per message (None: nowhere to go), counted as pending at once.

        `permitted`: the regions the messages may run in (None: any); `high`: they go to
        high-priority queues, each to the candidate with the shortest high-priority wait.
        """
        with self._lock:
            if high:
                chosen = self._shortest_wait(source, count, permitted)
            else:
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
                    load = self._loads[region]
                    self._loads[region] = load.plus_high(1) if high else load.plus(1)
            return chosen

    def _shortest_wait(
        self, source: str, count: int, permitted: Collection[str] | None
    ) -> list[str | None]:
        # The candidates of `rescue_targets` (same rules, same preference for proof of a
        # consumer); only the choice among them differs.
        candidates = [
            load
            for load in self._loads.values()
            if load.region != source
            and load.region not in self._avoid
            and (permitted is None or load.region in permitted)
            and not looks_stalled(load)
        ]
        pool = [load for load in candidates if has_consumer_proof(load)] or candidates
        if not pool:
            return [None] * count
        return assign_shortest_wait(pool, count, self._max_depth, self._rng)

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
