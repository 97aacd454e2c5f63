"""The routing strategies a run compares, each as a per-container `Chooser`.

Strategies of the project run exactly as in the Lambda: a real `DepthCache` (its refresh
reads the simulated queues through SQS-shaped clients, and the simulated presence table
through the presence seam) and a real `Router`. Round-robin and uniform random are baselines
that look at nothing; the oracle reads the true state at every choice.

Every chooser routes a batch as a list of `Need`s: the regions each request may run in and
whether it is high priority. The project's strategies follow the distributor's plan
(`orchestrator.core.plan`); the baselines only keep to the permitted regions (they treat
high priority as standard); the oracle sends high-priority work to the shortest high-priority
wait on the true state.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from orchestrator.core.depth import DepthCache
from orchestrator.core.plan import Need, choose_regions
from orchestrator.core.routing import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    RegionLoad,
    Router,
    Strategy,
    Weights,
    smooth_capacity_weights,
)
from orchestrator.simulator.queues import HIGH_SUFFIX, InlineExecutor, RegionQueue, SimSqs

MAX_DEPTH = 5000


class Chooser(Protocol):
    def choose(self, needs: Sequence[Need]) -> list[str | None]:
        """A region for each request (None: none of its permitted regions may take it now)."""
        ...

    def forwarded(self, region: str, count: int, high: bool = False) -> None:
        """`count` messages were sent to `region` (`high`: to its high-priority queue)."""
        ...


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    kind: str
    """"cache" (a project strategy), "round-robin", "random" or "oracle"."""
    strategy: str | Strategy | None = None
    note: str = ""


def _forgetting_preemptions(loads: Sequence[RegionLoad]) -> Weights:
    return smooth_capacity_weights([replace(load, since_drop=math.inf) for load in loads])


DRAWS = Strategy(smooth_capacity_weights, smooth=False)
"""The default's weights with independent random draws: what the smoothing is worth."""
NO_PREEMPTION_MEMORY = Strategy(_forgetting_preemptions, smooth=True)
"""The default without its preference for regions not recently preempted."""

CONTENDERS: tuple[Contender, ...] = (
    Contender("round-robin", "round-robin", note="each container cycles through the regions"),
    Contender("random", "random", note="uniform random region"),
    Contender("inverse-depth", "cache", "inverse-depth", note="the published formula"),
    Contender("expected-wait", "cache", "expected-wait", note="the previous default"),
    Contender(DEFAULT_STRATEGY, "cache", DEFAULT_STRATEGY, note="the new default"),
    Contender("default-draws", "cache", DRAWS, note="the default's weights, random draws"),
    Contender(
        "default-no-preempt",
        "cache",
        NO_PREEMPTION_MEMORY,
        note="the default without its preemption memory",
    ),
    Contender("oracle", "oracle", note="shortest expected wait, true state"),
)
DEFAULT_NAME = DEFAULT_STRATEGY
assert DEFAULT_STRATEGY in STRATEGIES


class World(Protocol):
    """What choosers may see of the simulation."""

    now: float
    queues: Mapping[str, RegionQueue]
    priority_queues: bool
    """True when every region has a high-priority queue beside its standard one."""

    def presence(self) -> Mapping[str, float]: ...


class CacheChooser:
    """A container of the real distributor: its own `DepthCache` and `Router`."""

    def __init__(
        self, world: World, strategy: str | Strategy, ttl: float, rng: random.Random
    ) -> None:
        self._cache = DepthCache(
            {name: name for name in world.queues},
            {name: SimSqs(queue) for name, queue in world.queues.items()},
            ttl,
            InlineExecutor(),
            clock=lambda: world.now,
            rng=random.Random(rng.random()),
            presence=world.presence,
            high_queue_urls=(
                {name: name + HIGH_SUFFIX for name in world.queues}
                if world.priority_queues
                else None
            ),
        )
        self._rng = random.Random(rng.random())
        self._router = Router(strategy, MAX_DEPTH, self._rng)

    def choose(self, needs: Sequence[Need]) -> list[str | None]:
        return choose_regions(self._router, self._cache.snapshot(), needs, self._rng)

    def forwarded(self, region: str, count: int, high: bool = False) -> None:
        self._cache.record_forwarded(region, count, high=high)


class RoundRobin:
    def __init__(self, regions: list[str], rng: random.Random) -> None:
        self._regions = regions
        self._next = rng.randrange(len(regions))

    def choose(self, needs: Sequence[Need]) -> list[str | None]:
        chosen: list[str | None] = []
        for need in needs:
            allowed = [r for r in self._regions if r in need.permitted]
            if not allowed:
                chosen.append(None)
                continue
            while (region := self._regions[self._next % len(self._regions)]) not in allowed:
                self._next += 1
            self._next += 1
            chosen.append(region)
        return chosen

    def forwarded(self, region: str, count: int, high: bool = False) -> None:
        pass


class UniformRandom:
    def __init__(self, regions: list[str], rng: random.Random) -> None:
        self._regions = regions
        self._rng = rng

    def choose(self, needs: Sequence[Need]) -> list[str | None]:
        chosen: list[str | None] = []
        for need in needs:
            allowed = [r for r in self._regions if r in need.permitted]
            chosen.append(self._rng.choice(allowed) if allowed else None)
        return chosen

    def forwarded(self, region: str, count: int, high: bool = False) -> None:
        pass


class Oracle:
    """Join the shortest expected wait, on the true state at the moment of each choice.

    A region's expected wait for one more message is ``(held + 1 - consumers) / consumers``
    service times when positive (held: waiting plus in service); the most negative value is
    the region with the most idle GPUs per GPU. A high-priority message counts only the
    high-priority messages waiting there as ahead of it: ``(high waiting + 1 - idle) /
    consumers``. Only permitted regions with a live consumer are chosen.
    """

    def __init__(self, world: World) -> None:
        self._world = world

    def choose(self, needs: Sequence[Need]) -> list[str | None]:
        added = dict.fromkeys(self._world.queues, 0)
        added_high = dict.fromkeys(self._world.queues, 0)
        chosen: list[str | None] = []
        for need in needs:
            best, best_wait = None, 0.0
            for name, queue in self._world.queues.items():
                if queue.alive <= 0 or name not in need.permitted:
                    continue
                if need.high:
                    ahead = len(queue.high_waiting) + added_high[name]
                    idle = max(0, queue.alive - queue.busy - added[name])
                    wait = (ahead + 1 - idle) / queue.alive
                else:
                    held = queue.visible + queue.busy + added[name]
                    wait = (held + 1 - queue.alive) / queue.alive
                if best is None or wait < best_wait:
                    best, best_wait = name, wait
            chosen.append(best)
            if best is not None:
                added[best] += 1
                added_high[best] += need.high
        return chosen

    def forwarded(self, region: str, count: int, high: bool = False) -> None:
        pass


def chooser_factory(
    contender: Contender, world: World, ttl: float
) -> Callable[[random.Random], Chooser]:
    """Builds one container's chooser (the rescue function builds a fresh one per run)."""
    regions = list(world.queues)
    if contender.kind == "cache":
        assert contender.strategy is not None
        strategy = contender.strategy
        return lambda rng: CacheChooser(world, strategy, ttl, rng)
    if contender.kind == "round-robin":
        return lambda rng: RoundRobin(regions, rng)
    if contender.kind == "random":
        return lambda rng: UniformRandom(regions, rng)
    if contender.kind == "oracle":
        return lambda rng: Oracle(world)
    raise ValueError(f"unknown contender kind {contender.kind!r}")
