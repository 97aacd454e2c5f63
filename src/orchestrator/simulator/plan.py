"""The distributor's batch plan, as the model runs it: placement, residency and priority.

`orchestrator.distributor.plan.choose_regions` is pure (it calls only `orchestrator.core`),
but it lives in another component, which the simulator may not import. This module makes the
same calls in the same order: requests grouped by (permitted regions, high priority),
high-priority groups first, each group routed on the snapshot filtered to its regions
(standard by the container's `Router`, high priority by `assign_shortest_wait`), every
choice counted as pending before the next group. A test holds the two to the same answers;
moving `choose_regions` and `Need` into `orchestrator.core` would let both import one copy.
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
    """The regions it may run in (never empty: those requests are dead-lettered first)."""
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
