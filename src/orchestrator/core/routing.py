"""Region selection: functions of a load snapshot, and the small per-container state of a `Router`.

Nothing here talks to AWS, so the simulator, the benchmarks and the property tests call the
same code the Lambda runs. The strategies' names and the default live here and nowhere else
(the distributor's configuration imports them). docs/routing.md has the reasoning and the
simulator's evidence.

Strategies
----------
``smooth-capacity`` (default)
    Capacity first, waits as far as the snapshot is still worth believing, and a container's
    own sends spread evenly::

        capacity  = live capacity from the workers' presence records (proof of work), or the
                    SQS estimate below when presence is unavailable; 0 when a measured backlog
                    has nothing in flight (the SQS cross-check: registered but not working)
        held      = visible + pending + min(in_flight, capacity)     messages in the region
        wait      = max(0, held + 1 - capacity) / capacity          in service times
        trust     = FRESH_SECONDS / (FRESH_SECONDS + age)            1 fresh, 1/2 at 10 s old
        weight    = capacity * exp(-SHARPNESS * trust * (wait - least wait))
                           * (1 - PREEMPTED_PENALTY * exp(-since_drop / PREEMPTED_MEMORY))

    A fresh snapshot makes it nearly "join the shortest expected wait"; an old one fades to
    the capacity split, because an old backlog figure says little about the backlog now while
    the capacity split stays right on average (twenty containers acting on the same old
    backlog is what makes a herd). A region whose capacity fell suddenly is read as preempted
    and gets less for a few minutes (SkyPilot avoids such zones for the same reason). The
    `Router` hands out each container's messages by smooth weighted round-robin (deficit
    counters) instead of independent random draws, so a container's own sends follow the
    weights closely even over one batch.

``expected-wait`` (the previous default)
    Weighted random draws with ``weight = capacity² / (backlog + 1)``, capacity read from SQS
    only (see `sqs_capacity`)::

        capacity = 0                             if visible > 0 and in_flight == 0  (stalled)
                 = max(in_flight, capacity_hint) otherwise, or 1 if that is 0     (idle: assume one)

    Messages that stay invisible with no worker behind them ("zombie in-flight", after a
    SIGKILL or a vanished Spot node) count as busy GPUs here: it keeps feeding such a region.

``inverse-depth``
    The published orchestrator's formula, kept for compatibility:
    ``weight = max(1, max_depth - depth + 1)`` with ``depth = backlog``.

High priority (`assign_shortest_wait`, not a strategy: the same for every ``ROUTING_STRATEGY``)
    Each high-priority message joins the region where it would wait least, on the same
    snapshot: ``wait = high-priority backlog / capacity`` (workers drain their region's
    high-priority queue before the standard one, so only that backlog is ahead of it), ties
    going to the larger capacity. A small share of traffic, so the herding that a shortest-wait
    rule invites on stale snapshots costs little; what matters is the latency of that share.

Regions that are unavailable (cooling down after failed sends) or whose backlog is at or
above ``max_depth`` are never chosen; when none is left the choice is ``None`` and the caller
pushes back instead of dropping.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

Weights = dict[str, float]

FRESH_SECONDS = 10.0
"""Snapshot age at which its backlog figures count half (trust = 1/2)."""
SHARPNESS = 3.0
"""How hard a fresh snapshot steers away from a longer wait: weight * e^-3 per service time."""
PREEMPTED_PENALTY = 0.5
"""Weight taken from a region right after its capacity fell suddenly."""
PREEMPTED_MEMORY = 300.0
"""Seconds over which that penalty fades (by 1/e)."""
CREDIT_LIMIT = 2.0
"""Bound of a region's deficit counter: the router remembers about two messages of debt or
credit (at steady weights the counters stay inside it, so the bound only cuts what a change of
weights leaves behind)."""


@dataclass(frozen=True, slots=True)
class RegionLoad:
    """What the distributor believes about one region queue right now."""

    region: str
    visible: int
    """Messages waiting at the last refresh: `ApproximateNumberOfMessages` (of both queues when
    the region has a high-priority queue)."""
    in_flight: int
    """Messages held by consumers at the last refresh: `ApproximateNumberOfMessagesNotVisible`
    (of both queues: the same workers consume both)."""
    pending: int = 0
    """Messages this container sent to the region since the last refresh."""
    capacity_hint: float = 0.0
    """The highest in-flight count seen recently (decaying), for regions that look idle."""
    available: bool = True
    """False while the region cools down after failed sends."""
    stale: bool = False
    """True when the last refresh of this region failed and older figures are in use."""
    live_capacity: float | None = None
    """Messages the region's live workers can hold at once, from their presence records
    (proof of work); None when no presence reading is available."""
    age: float = 0.0
    """Seconds since `visible` and `in_flight` were measured (inf: never)."""
    since_drop: float = math.inf
    """Seconds since the region's capacity was seen to fall suddenly (a preemption)."""
    high_visible: int = 0
    """Of `visible`: messages waiting in the region's high-priority queue (0 without one)."""
    high_pending: int = 0
    """Of `pending`: high-priority messages this container sent there since the last refresh."""

    @property
    def backlog(self) -> int:
        return self.visible + self.pending

    @property
    def high_backlog(self) -> int:
        """High-priority messages waiting: what a new high-priority message queues behind."""
        return self.high_visible + self.high_pending

    def plus(self, sent: int) -> RegionLoad:
        return replace(self, pending=self.pending + sent)

    def plus_high(self, sent: int) -> RegionLoad:
        """`sent` more high-priority messages (they count in the region's backlog too)."""
        return replace(self, pending=self.pending + sent, high_pending=self.high_pending + sent)


# -- capacity ---------------------------------------------------------------------------------


def _stalled(load: RegionLoad) -> bool:
    # A measured backlog that nobody takes. Judged on measurements, never on pending sends.
    return load.visible > 0 and load.in_flight == 0


def sqs_capacity(load: RegionLoad) -> float:
    """Messages the region works on at once as far as the queue shows (0: stalled)."""
    if _stalled(load):
        return 0.0
    return max(float(load.in_flight), load.capacity_hint) or 1.0


capacity = sqs_capacity  # the name the previous default's callers know


def proof_capacity(load: RegionLoad) -> float:
    """Live capacity from the workers' presence when known, else the SQS estimate.

    In-flight counts only cross-check the presence figure: a region whose workers say they
    are alive while a measured backlog sits there with nothing in flight is not working.
    """
    if load.live_capacity is None:
        return sqs_capacity(load)
    if _stalled(load) and not load.stale:
        return 0.0
    return max(0.0, load.live_capacity)


def expected_wait(load: RegionLoad, region_capacity: float) -> float:
    """Service times a new message would wait, from the snapshot and this container's sends."""
    if region_capacity <= 0:
        return math.inf
    held = load.backlog + min(load.in_flight, region_capacity)
    return max(0.0, held + 1 - region_capacity) / region_capacity


def trust(age: float) -> float:
    """How much a snapshot's backlog figures count: 1 when fresh, halving at FRESH_SECONDS."""
    if not age < math.inf:
        return 0.0
    return FRESH_SECONDS / (FRESH_SECONDS + max(0.0, age))


def preemption_factor(since_drop: float) -> float:
    """Less weight for a region that was preempted recently, fading over PREEMPTED_MEMORY."""
    if not since_drop < math.inf:
        return 1.0
    return 1.0 - PREEMPTED_PENALTY * math.exp(-max(0.0, since_drop) / PREEMPTED_MEMORY)


# -- weights ----------------------------------------------------------------------------------


def _buffer_weights(loads: Sequence[RegionLoad]) -> Weights:
    # Every eligible region is stalled or empty of workers: the queues still buffer the work.
    return {load.region: 1.0 / (load.backlog + 1) for load in loads}


def smooth_capacity_weights(loads: Sequence[RegionLoad]) -> Weights:
    caps = {load.region: proof_capacity(load) for load in loads}
    live = [load for load in loads if caps[load.region] > 0]
    if not live:
        return _buffer_weights(loads)
    scores = {load.region: _steering_wait(load, caps[load.region]) for load in live}
    least = min(scores.values())
    weights = dict.fromkeys(caps, 0.0)
    for load in live:
        score = scores[load.region]
        steer = 1.0 if score == least else math.exp(-SHARPNESS * (score - least))
        weights[load.region] = caps[load.region] * steer * preemption_factor(load.since_drop)
    if not any(weights.values()):  # capacities so small that every weight underflowed
        return _buffer_weights(loads)
    return weights


def _steering_wait(load: RegionLoad, region_capacity: float) -> float:
    """trust x wait, where a snapshot worth nothing steers nothing, even at an endless wait."""
    weight = trust(load.age)
    return 0.0 if weight == 0 else weight * expected_wait(load, region_capacity)


def expected_wait_weights(loads: Sequence[RegionLoad]) -> Weights:
    weights = {load.region: sqs_capacity(load) ** 2 / (load.backlog + 1) for load in loads}
    if loads and not any(weights.values()):
        return _buffer_weights(loads)
    return weights


def inverse_depth_weights(loads: Sequence[RegionLoad]) -> Weights:
    if not loads:
        return {}
    max_depth = max(load.backlog for load in loads)
    return {load.region: float(max(1, max_depth - load.backlog + 1)) for load in loads}


@dataclass(frozen=True, slots=True)
class Strategy:
    """A weight formula and how a container turns weights into choices."""

    weights: Callable[[Sequence[RegionLoad]], Weights]
    smooth: bool
    """True: deficit counters per container (smooth weighted round-robin); False: random draws."""


STRATEGIES: Mapping[str, Strategy] = {
    "smooth-capacity": Strategy(smooth_capacity_weights, smooth=True),
    "expected-wait": Strategy(expected_wait_weights, smooth=False),
    "inverse-depth": Strategy(inverse_depth_weights, smooth=False),
}
STRATEGY_NAMES: tuple[str, ...] = tuple(STRATEGIES)
DEFAULT_STRATEGY = "smooth-capacity"


def eligible(loads: Sequence[RegionLoad], max_depth: int) -> list[RegionLoad]:
    """Regions that may receive traffic: available and below the depth threshold."""
    return [load for load in loads if load.available and load.backlog < max_depth]


def region_weights(strategy: str, loads: Sequence[RegionLoad], max_depth: int) -> Weights:
    """Weights of the eligible regions only (the others are absent)."""
    return STRATEGIES[strategy].weights(eligible(loads, max_depth))


def _draw(weights: Weights, rng: random.Random) -> str | None:
    total = sum(weights.values())
    if total <= 0:
        return None
    point = rng.random() * total
    for region, weight in weights.items():
        point -= weight
        if point < 0:
            return region
    return next(r for r, w in reversed(weights.items()) if w > 0)


def select_region(
    strategy: str,
    loads: Sequence[RegionLoad],
    rng: random.Random,
    max_depth: int,
) -> str | None:
    """Weighted random choice of a region, or None when no region may take traffic."""
    return _draw(region_weights(strategy, loads, max_depth), rng)


def assign_regions(
    strategy: str,
    loads: Sequence[RegionLoad],
    count: int,
    rng: random.Random,
    max_depth: int,
) -> list[str | None]:
    """Random draws for `count` messages, each seeing the ones before it (no container state).

    A `Router` is what a container uses; this stateless form serves one-off choices.
    """
    current = {load.region: load for load in loads}
    chosen: list[str | None] = []
    for _ in range(count):
        region = select_region(strategy, list(current.values()), rng, max_depth)
        chosen.append(region)
        if region is not None:
            current[region] = current[region].plus(1)
    return chosen


# -- high priority ----------------------------------------------------------------------------


def high_priority_wait(load: RegionLoad) -> float:
    """Service times a new high-priority message waits in the region: its high-priority backlog
    over the region's capacity (workers take high-priority work before standard work, so the
    standard backlog does not delay it); infinite without capacity."""
    region_capacity = proof_capacity(load)
    if region_capacity <= 0:
        return math.inf
    return load.high_backlog / region_capacity


def assign_shortest_wait(
    loads: Sequence[RegionLoad],
    count: int,
    max_depth: int,
    rng: random.Random | None = None,
) -> list[str | None]:
    """A region for each of `count` high-priority messages: the shortest `high_priority_wait`.

    Not a weighted spread: each message joins the eligible region (available, below
    `max_depth`) where it would wait least, ties going to the larger capacity, then to the
    smaller high-priority backlog (when no region has capacity the queues still buffer), then
    to a random order drawn once per call (so containers do not all favour the same region).
    Each choice sees the ones before it as pending high-priority sends; None when no region
    may take traffic.
    """
    current = {load.region: load for load in loads}
    rng = rng or random.Random()
    order = {region: rng.random() for region in current}
    chosen: list[str | None] = []
    for _ in range(count):
        candidates = eligible(list(current.values()), max_depth)
        if not candidates:
            chosen.append(None)
            continue
        best = min(
            candidates,
            key=lambda load: (
                high_priority_wait(load),
                -proof_capacity(load),
                load.high_backlog,
                order[load.region],
            ),
        )
        chosen.append(best.region)
        current[best.region] = best.plus_high(1)
    return chosen


class Router:
    """One container's region chooser: a strategy plus the deficit counters it keeps.

    Not thread-safe; a container routes one batch at a time.
    """

    def __init__(
        self,
        strategy: str | Strategy = DEFAULT_STRATEGY,
        max_depth: int = 5000,
        rng: random.Random | None = None,
    ) -> None:
        """`strategy` is a name from `STRATEGIES`, or a `Strategy` being tried out."""
        if isinstance(strategy, str):
            if strategy not in STRATEGIES:
                raise ValueError(f"unknown routing strategy {strategy!r}")
            strategy = STRATEGIES[strategy]
        self.max_depth = max_depth
        self._spec = strategy
        self._rng = rng or random.Random()
        self._credit: dict[str, float] = {}

    def assign(self, loads: Sequence[RegionLoad], count: int) -> list[str | None]:
        """A region (or None: no region may take it) for each of `count` messages.

        Each choice sees the ones before it as pending sends.
        """
        current = {load.region: load for load in loads}
        chosen: list[str | None] = []
        for _ in range(count):
            weights = self._spec.weights(eligible(list(current.values()), self.max_depth))
            region = self._pick(weights) if self._spec.smooth else _draw(weights, self._rng)
            chosen.append(region)
            if region is not None:
                current[region] = current[region].plus(1)
        return chosen

    def _pick(self, weights: Weights) -> str | None:
        """Smooth weighted round-robin: every region earns its share, the richest is sent one.

        Counters start at a random phase, so containers that start together do not all send
        their first message to the same region; they are bounded, so a region's weight
        changing does not leave a long debt or credit behind.
        """
        total = sum(weights.values())
        if total <= 0:
            return None
        best: str | None = None
        for region, weight in weights.items():
            if weight <= 0:
                self._credit.pop(region, None)
                continue
            credit = self._credit.get(region)
            if credit is None:
                credit = self._rng.random() - 0.5
            credit = min(CREDIT_LIMIT, credit + weight / total)
            self._credit[region] = credit
            if best is None or credit > self._credit[best]:
                best = region
        assert best is not None
        self._credit[best] = max(-CREDIT_LIMIT, self._credit[best] - 1.0)
        return best
