"""What a simulated run faces: regions and their GPUs, the load, and what goes wrong when."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from orchestrator.core.presence import HEARTBEAT_SECONDS, TTL_SECONDS


class Loss(Enum):
    """How consumers go away."""

    CLEAN = "clean"
    """Drained: held messages are handed back at once and presence records are deleted."""
    HARD = "hard"
    """SIGKILL or a vanished Spot node: held messages stay invisible until their visibility
    timeout runs out, presence records until their lease runs out."""


@dataclass(frozen=True, slots=True)
class Disruption:
    """`lose` consumers of `region` go away at `at`; they come back at `until` (if given)."""

    region: str
    at: float
    lose: int
    loss: Loss
    until: float | None = None


@dataclass(frozen=True, slots=True)
class Zombies:
    """`count` messages held invisible in `region` by no worker from time 0 (a client that
    never deletes, or a worker killed before the run), visible again after `invisible_for`."""

    region: str
    count: int
    invisible_for: float


@dataclass(frozen=True, slots=True)
class SpotChurn:
    """Spot interruptions: a region loses a quarter of its GPUs (at least one), hard, in waves
    that start at random (`mean_gap` apart on average); a wave is `wave` interruptions about
    `wave_gap` apart (a capacity crunch in a zone rarely takes one node only). Each lost node's
    replacement joins `replaced_after` later."""

    mean_gap: float = 600.0
    replaced_after: float = 240.0
    wave: int = 1
    wave_gap: float = 60.0


@dataclass(frozen=True, slots=True)
class Burst:
    """Arrivals run `factor` times faster between `start` and `end`."""

    start: float
    end: float
    factor: float


@dataclass(frozen=True, slots=True)
class RequestClass:
    """A share of the requests: the model they name and the regions they allow (None: any)."""

    share: float
    model: str = "default"
    allowed_regions: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    capacities: Mapping[str, int]
    load: float
    """Offered load as a fraction of the full capacity (before any loss)."""
    disruptions: tuple[Disruption, ...] = ()
    zombies: tuple[Zombies, ...] = ()
    spot: SpotChurn | None = None
    bursts: tuple[Burst, ...] = ()
    horizon: float = 3600.0
    """Arrivals stop here; the run goes on for `drain` seconds more."""
    warmup: float = 300.0
    """Requests that arrive before this are served but not measured."""
    drain: float = 600.0
    service_mean: float = 4.0
    """Mean GPU service time in seconds (lognormal)."""
    service_sigma: float = 0.5
    """Sigma of the service time's logarithm."""
    invisible_for: float = 900.0
    """Visibility timeout of the region queues: how long a hard-lost message stays hidden."""
    heartbeat: float = HEARTBEAT_SECONDS
    """Seconds between a worker's presence updates."""
    lease: float = TTL_SECONDS
    """A presence record counts until this long after its last update."""
    rescue: bool = True
    batch_size: int = 10
    batching_window: float = 1.0
    containers: int = 20
    high_share: float = 0.0
    """Share of requests that are high priority; above 0, every region has a high-priority
    queue beside its standard one."""
    model_regions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Model placement (`MODEL_REGIONS`): which regions serve which model (empty: all)."""
    mix: tuple[RequestClass, ...] = ()
    """The requests' models and residency (empty: one model, no restriction)."""
    tags: tuple[str, ...] = field(default=())

    @property
    def total_capacity(self) -> int:
        return sum(self.capacities.values())

    @property
    def arrival_rate(self) -> float:
        """Requests per second at the base load."""
        return self.load * self.total_capacity / self.service_mean

    @property
    def service_mu(self) -> float:
        """The lognormal's mu for the configured mean."""
        return math.log(self.service_mean) - self.service_sigma**2 / 2

    def shorter(self, factor: float) -> Scenario:
        """The same scenario with every time scaled by `factor` (quick runs, tests)."""
        return replace(
            self,
            horizon=self.horizon * factor,
            warmup=self.warmup * factor,
            drain=self.drain * factor,
            disruptions=tuple(
                replace(d, at=d.at * factor, until=None if d.until is None else d.until * factor)
                for d in self.disruptions
            ),
            bursts=tuple(
                replace(b, start=b.start * factor, end=b.end * factor) for b in self.bursts
            ),
        )


EAST, WEST, EU = "us-east-1", "us-west-2", "eu-west-1"
HETERO = {EAST: 12, WEST: 6, EU: 2}
EQUAL = {EAST: 8, WEST: 8, EU: 8}
HIGH_SHARE = 0.10
"""High-priority share of the priority scenarios (the issue's 10%)."""
BIG = "llama-3-70b"
PLACEMENT_MIX = (
    RequestClass(0.60),
    RequestClass(0.25, BIG),
    RequestClass(0.05, allowed_regions=(EU,)),
    RequestClass(0.05, allowed_regions=(WEST, EU)),
    RequestClass(0.03, BIG, allowed_regions=(WEST, EU)),
    RequestClass(0.02, BIG, allowed_regions=(EU,)),
)
"""60% unrestricted; 25% a model only us-east-1 and us-west-2 serve; 5% EU-only data; 5% kept
out of us-east-1; 3% the big model kept out of us-east-1 (us-west-2 alone may run them); 2% the
big model EU-only, which no region may run (dead-lettered)."""

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("hetero", "capacities 12/6/2 at 85% load", HETERO, 0.85, tags=("target",)),
        Scenario("equal", "capacities 8/8/8 at 85% load", EQUAL, 0.85, tags=("target",)),
        Scenario(
            "loss-clean",
            "12/6/2 at 60%; us-west-2 loses every consumer at 1200 s, cleanly",
            HETERO,
            0.60,
            disruptions=(Disruption(WEST, 1200.0, 6, Loss.CLEAN),),
            tags=("loss",),
        ),
        Scenario(
            "loss-hard",
            "12/6/2 at 60%; us-west-2 loses every consumer at 1200 s, hard (15 min invisible)",
            HETERO,
            0.60,
            disruptions=(Disruption(WEST, 1200.0, 6, Loss.HARD),),
            tags=("loss",),
        ),
        Scenario(
            "partial-loss",
            "8/8/8 at 60%; us-east-1 loses 6 of its 8 from 1200 s to 2400 s",
            EQUAL,
            0.60,
            disruptions=(Disruption(EAST, 1200.0, 6, Loss.CLEAN, until=2400.0),),
        ),
        Scenario(
            "zombie",
            "10/10/0 at 60%; eu-west-1 has no worker but 10 messages in flight for 15 min",
            {EAST: 10, WEST: 10, EU: 0},
            0.60,
            zombies=(Zombies(EU, 10, 900.0),),
        ),
        Scenario(
            "spot",
            "8/8/8 at 70%; Spot interruptions (a quarter of a region, hard) every ~10 min",
            EQUAL,
            0.70,
            spot=SpotChurn(),
        ),
        Scenario(
            "spot-waves",
            "8/8/8 at 70%; Spot waves: 3 interruptions ~1 min apart, every ~20 min per region",
            EQUAL,
            0.70,
            spot=SpotChurn(mean_gap=1200.0, wave=3),
        ),
        Scenario(
            "priority",
            "12/6/2 at 85% load, 10% high priority",
            HETERO,
            0.85,
            high_share=HIGH_SHARE,
            horizon=1800.0,
            tags=("priority",),
        ),
        Scenario(
            "priority-equal",
            "8/8/8 at 85% load, 10% high priority",
            EQUAL,
            0.85,
            high_share=HIGH_SHARE,
            horizon=1800.0,
            tags=("priority",),
        ),
        Scenario(
            "placement",
            f"12/6/2 at 60%; {BIG} only in us-east-1 and us-west-2, 15% with allowed_regions, "
            "10% high; us-west-2 loses every consumer from 900 s to 1500 s, cleanly",
            HETERO,
            0.60,
            high_share=HIGH_SHARE,
            model_regions={BIG: (EAST, WEST), "*": (EAST, WEST, EU)},
            mix=PLACEMENT_MIX,
            disruptions=(Disruption(WEST, 900.0, 6, Loss.CLEAN, until=1500.0),),
            horizon=1800.0,
            tags=("placement",),
        ),
    )
}

TTLS = (10.0, 60.0)
