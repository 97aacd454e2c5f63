"""Choosing a region for every request of a batch: placement, residency and priority together.

Each request may run only in its permitted regions (`orchestrator.core.placement`), and a
high-priority one goes to a high-priority queue when the regions have them. Requests are
grouped by (permitted regions, high priority); each group is routed on the snapshot filtered
to its regions:

- standard groups by the container's `Router` (the routing strategy, its deficit counters);
- high-priority groups by `assign_shortest_wait` (the shortest high-priority wait).

Every choice is counted as pending before the next group is routed, so the groups see each
other's sends exactly as one unrestricted batch would see its own. High-priority groups go
first: within a batch they are the ones that should find the short queues.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.core.routing import RegionLoad, Router, assign_shortest_wait


@dataclass(frozen=True, slots=True)
class Need:
    """What one request asks of its region."""

    permitted: frozenset[str]
    """The regions it may run in (never empty here: those requests are dead-lettered)."""
    high: bool = False
    """True: it goes to a high-priority queue, to the region with the shortest wait there."""


def choose_regions(
    router: Router,
    loads: Sequence[RegionLoad],
    needs: Sequence[Need],
    rng: random.Random | None = None,
) -> list[str | None]:
    """A region for each need (None: none of its permitted regions may take traffic now)."""
    current = {load.region: load for load in loads}
    groups: dict[Need, list[int]] = {}
    for index, need in enumerate(needs):
        groups.setdefault(need, []).append(index)
    chosen: list[str | None] = [None] * len(needs)
    for need in sorted(groups, key=lambda n: not n.high):  # stable: first seen first
        indexes = groups[need]
        subset = [load for region, load in current.items() if region in need.permitted]
        if need.high:
            regions = assign_shortest_wait(subset, len(indexes), router.max_depth, rng)
        else:
            regions = router.assign(subset, len(indexes))
        for index, region in zip(indexes, regions, strict=True):
            chosen[index] = region
            if region is not None:
                load = current[region]
                current[region] = load.plus_high(1) if need.high else load.plus(1)
    return chosen
