"""Region selection: pure functions of a load snapshot and a random generator.

Nothing here talks to AWS, so the simulator, the benchmarks and the property tests call the
same code the Lambda runs.

Strategies
----------
``expected-wait`` (default)
    A new message joins the back of a region's queue; it waits about
    ``(visible + 1) / capacity`` service times, where *capacity* is how many messages the
    region's consumers hold in flight (``ApproximateNumberOfMessagesNotVisible``): a busy
    GPU worker holds exactly the message it is working on. The weight is the inverse of that
    wait::

        capacity = in_flight            if in_flight > 0
                 = 1                    if in_flight == 0 and visible == 0   (idle, assume one)
                 = 0                    if in_flight == 0 and visible > 0    (stalled)
        weight   = capacity / (visible + 1)

    So equal backlogs split in proportion to capacity (12 GPUs get six times the share of
    2), and a region with a backlog that nobody consumes (all its Spot nodes reclaimed) gets
    nothing. If every eligible region is stalled, the queues still buffer the work:
    weights fall back to ``1 / (visible + 1)``.

``inverse-depth``
    The published orchestrator's formula, kept for compatibility:
    ``weight = max(1, max_depth - depth + 1)`` with ``depth = visible``.

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
    """Messages waiting: `ApproximateNumberOfMessages` plus what this container sent since."""
    in_flight: int
    """Messages held by consumers: `ApproximateNumberOfMessagesNotVisible`."""
    available: bool = True
    """False while the region cools down after failed sends."""
    stale: bool = False
    """True when the last refresh of this region failed and older figures are in use."""

    def plus(self, sent: int) -> RegionLoad:
        return replace(self, visible=self.visible + sent)


def expected_wait_weights(loads: Sequence[RegionLoad]) -> Weights:
    weights: Weights = {}
    for load in loads:
        if load.in_flight > 0:
            capacity = float(load.in_flight)
        else:
            capacity = 1.0 if load.visible == 0 else 0.0
        weights[load.region] = capacity / (load.visible + 1)
    if loads and not any(weights.values()):
        return {load.region: 1.0 / (load.visible + 1) for load in loads}
    return weights


def inverse_depth_weights(loads: Sequence[RegionLoad]) -> Weights:
    if not loads:
        return {}
    max_depth = max(load.visible for load in loads)
    return {load.region: float(max(1, max_depth - load.visible + 1)) for load in loads}


STRATEGIES: Mapping[str, Callable[[Sequence[RegionLoad]], Weights]] = {
    "expected-wait": expected_wait_weights,
    "inverse-depth": inverse_depth_weights,
}


def eligible(loads: Sequence[RegionLoad], max_depth: int) -> list[RegionLoad]:
    """Regions that may receive traffic: available and below the depth threshold."""
    return [load for load in loads if load.available and load.visible < max_depth]


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
