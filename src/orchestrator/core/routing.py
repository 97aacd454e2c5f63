"""Region selection: pure functions of a load snapshot and a random generator.

Nothing here talks to AWS, so the simulator, the benchmarks and the property tests call the
same code the Lambda runs.

Strategies
----------
``expected-wait`` (default)
    Each region gets traffic in proportion to its capacity, discounted by the wait a new
    message would see there. Capacity is how many messages the region's consumers hold in
    flight (``ApproximateNumberOfMessagesNotVisible``: a busy GPU worker holds exactly the
    message it works on), or the highest in-flight count seen recently (`capacity_hint`), so
    a region that drains fast and looks idle between refreshes keeps its size::

        capacity = 0                             if visible > 0 and in_flight == 0  (stalled)
                 = max(in_flight, capacity_hint) otherwise, or 1 if that is 0     (idle: assume one)
        wait     = (backlog + 1) / capacity      with backlog = visible + pending
        weight   = capacity / wait  =  capacity² / (backlog + 1)

    When waits are equal the shares are proportional to capacity, so they stay equal: the
    backlogs settle in proportion to capacity. (Weighting by ``1 / wait`` alone would give
    equal shares at equal waits and drift to equal *backlogs*, making small regions slow.)
    A region with a backlog that nobody consumes — all its Spot nodes reclaimed — gets
    nothing. If every eligible region is stalled, the queues still buffer the work: weights
    fall back to ``1 / (backlog + 1)``.

``inverse-depth``
    The published orchestrator's formula, kept for compatibility:
    ``weight = max(1, max_depth - depth + 1)`` with ``depth = backlog``.

Regions that are unavailable (cooling down after failed sends) or whose backlog is at or
above ``max_depth`` are never chosen; when none is left, `select_region` returns ``None``
and the caller pushes back instead of dropping.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

Weights = dict[str, float]


@dataclass(frozen=True, slots=True)
class RegionLoad:
    """What the distributor believes about one region queue right now."""

    region: str
    visible: int
    """Messages waiting at the last refresh: `ApproximateNumberOfMessages`."""
    in_flight: int
    """Messages held by consumers at the last refresh: `ApproximateNumberOfMessagesNotVisible`."""
    pending: int = 0
    """Messages this container sent to the region since the last refresh."""
    capacity_hint: float = 0.0
    """The highest in-flight count seen recently (decaying), for regions that look idle."""
    available: bool = True
    """False while the region cools down after failed sends."""
    stale: bool = False
    """True when the last refresh of this region failed and older figures are in use."""

    @property
    def backlog(self) -> int:
        return self.visible + self.pending

    def plus(self, sent: int) -> RegionLoad:
        return replace(self, pending=self.pending + sent)


def capacity(load: RegionLoad) -> float:
    """Messages the region works on at once, as far as the queue shows (0: stalled)."""
    if load.visible > 0 and load.in_flight == 0:
        return 0.0  # a measured backlog that nobody takes: judged on measurements, not pending
    return max(float(load.in_flight), load.capacity_hint) or 1.0


def expected_wait_weights(loads: Sequence[RegionLoad]) -> Weights:
    weights = {load.region: capacity(load) ** 2 / (load.backlog + 1) for load in loads}
    if loads and not any(weights.values()):
        return {load.region: 1.0 / (load.backlog + 1) for load in loads}
    return weights


def inverse_depth_weights(loads: Sequence[RegionLoad]) -> Weights:
    if not loads:
        return {}
    max_depth = max(load.backlog for load in loads)
    return {load.region: float(max(1, max_depth - load.backlog + 1)) for load in loads}


STRATEGIES: Mapping[str, Callable[[Sequence[RegionLoad]], Weights]] = {
    "expected-wait": expected_wait_weights,
    "inverse-depth": inverse_depth_weights,
}


def eligible(loads: Sequence[RegionLoad], max_depth: int) -> list[RegionLoad]:
    """Regions that may receive traffic: available and below the depth threshold."""
    return [load for load in loads if load.available and load.backlog < max_depth]


def region_weights(strategy: str, loads: Sequence[RegionLoad], max_depth: int) -> Weights:
    """Weights of the eligible regions only (the others are absent)."""
    return STRATEGIES[strategy](eligible(loads, max_depth))


def select_region(
    strategy: str,
    loads: Sequence[RegionLoad],
    rng: random.Random,
    max_depth: int,
) -> str | None:
    """Weighted random choice of a region, or None when no region may take traffic."""
    weights = region_weights(strategy, loads, max_depth)
    total = sum(weights.values())
    if total <= 0:
        return None
    point = rng.random() * total
    for region, weight in weights.items():
        point -= weight
        if point < 0:
            return region
    return next(r for r, w in reversed(weights.items()) if w > 0)


def assign_regions(
    strategy: str,
    loads: Sequence[RegionLoad],
    count: int,
    rng: random.Random,
    max_depth: int,
) -> list[str | None]:
    """Choose a region for each of `count` messages, each choice seeing the ones before it."""
    current = {load.region: load for load in loads}
    chosen: list[str | None] = []
    for _ in range(count):
        region = select_region(strategy, list(current.values()), rng, max_depth)
        chosen.append(region)
        if region is not None:
            current[region] = current[region].plus(1)
    return chosen
