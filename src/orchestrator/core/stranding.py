"""Stranded work: when a region queue has stopped draining, and where its backlog may go.

Pure functions of observations, so the rescue function (`orchestrator.rescue`) and the
routing simulator run the same rule. Nothing here talks to AWS.

A region queue is **stranded** when either

- **no consumers** — messages wait (``visible > 0``) and nothing takes them (nothing in
  flight, or, when the workers' presence is known, no live worker), continuously for at
  least ``stall_seconds``; or
- **too old** — its oldest message is ``max_age_seconds`` old or older (a region whose
  consumers are alive but not getting through, or whose messages are held by dead
  consumers: "zombie in flight").

The first rule needs memory across observations: `track_stall` turns the previous "stalled
since" and a new observation into the next one (None: not stalled now). Observations are a
minute apart in the deployed function, so a stall shorter than the schedule may go unseen;
one as long as ``stall_seconds`` + a minute never does.

Where the backlog goes: `rescue_targets` picks a region for each message with the real
routing strategy (`orchestrator.core.routing.assign_regions`), among regions that are
neither the source, nor stranded, nor looking stalled themselves, and that are permitted for
the request (the hook for model placement and data residency). Regions with proof of a
consumer are preferred; idle regions are used only when none has proof.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.core.routing import RegionLoad, assign_regions

DEFAULT_STALL_SECONDS = 120.0
DEFAULT_MAX_AGE_SECONDS = 600.0


class StrandReason(StrEnum):
    NO_CONSUMERS = "no-consumers"
    """Messages waiting and nothing taking them, for at least `stall_seconds`."""
    TOO_OLD = "too-old"
    """The oldest message is at least `max_age_seconds` old."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    stall_seconds: float = DEFAULT_STALL_SECONDS
    """How long a backlog may sit with nothing consuming it."""
    max_age_seconds: float | None = DEFAULT_MAX_AGE_SECONDS
    """How old the oldest message may get; None turns the rule off."""


@dataclass(frozen=True, slots=True)
class QueueObservation:
    """One look at a region queue."""

    visible: int
    """Messages waiting: ``ApproximateNumberOfMessages``."""
    in_flight: int
    """Messages held by consumers: ``ApproximateNumberOfMessagesNotVisible``."""
    oldest_age: float | None = None
    """Seconds since the oldest message was sent (``ApproximateAgeOfOldestMessage``); None
    when unknown."""
    live_capacity: float | None = None
    """What the region's live workers can hold at once, from their presence records; None
    when presence is not known."""

    @property
    def stalled(self) -> bool:
        """A backlog that nothing takes right now."""
        if self.visible <= 0:
            return False
        return self.in_flight <= 0 or (self.live_capacity is not None and self.live_capacity <= 0)


def track_stall(
    previous_since: float | None, observation: QueueObservation, now: float
) -> float | None:
    """The "stalled since" after `observation`: kept while stalled, started when it begins,
    None as soon as the queue is seen draining or empty."""
    if not observation.stalled:
        return None
    return now if previous_since is None or previous_since > now else previous_since


def stranded_reason(
    observation: QueueObservation,
    stalled_since: float | None,
    now: float,
    thresholds: Thresholds,
) -> StrandReason | None:
    """Why the region's backlog is stranded, or None when it is not.

    `stalled_since` is the value `track_stall` returned for this same observation. Nothing is
    stranded without messages waiting: in-flight messages cannot be moved.
    """
    if observation.visible <= 0:
        return None
    if (
        observation.stalled
        and stalled_since is not None
        and now - stalled_since >= thresholds.stall_seconds
    ):
        return StrandReason.NO_CONSUMERS
    if (
        thresholds.max_age_seconds is not None
        and observation.oldest_age is not None
        and observation.oldest_age >= thresholds.max_age_seconds
    ):
        return StrandReason.TOO_OLD
    return None


def is_stranded(
    observation: QueueObservation,
    stalled_since: float | None,
    now: float,
    thresholds: Thresholds,
) -> bool:
    """True when the region's waiting messages should be moved elsewhere."""
    return stranded_reason(observation, stalled_since, now, thresholds) is not None


def region_load(region: str, observation: QueueObservation) -> RegionLoad:
    """The routing's view of a region, from a fresh observation."""
    return RegionLoad(
        region=region,
        visible=observation.visible,
        in_flight=observation.in_flight,
        live_capacity=observation.live_capacity,
    )


def looks_stalled(load: RegionLoad) -> bool:
    """The same test as `QueueObservation.stalled`, on the routing's view of a region."""
    return QueueObservation(load.visible, load.in_flight, None, load.live_capacity).stalled


def has_consumer_proof(load: RegionLoad) -> bool:
    """Evidence that someone consumes the region now: live workers when presence is known,
    else messages in flight; never for a region that looks stalled."""
    if looks_stalled(load):
        return False
    if load.live_capacity is not None:
        return load.live_capacity > 0
    return load.in_flight > 0


def rescue_targets(
    source: str,
    loads: Sequence[RegionLoad],
    count: int,
    *,
    strategy: str,
    rng: random.Random,
    max_depth: int,
    avoid: Collection[str] = (),
    permitted: Collection[str] | None = None,
) -> list[str | None]:
    """A region for each of `count` messages moved out of `source` (None: nowhere to go).

    Candidates are the regions of `loads` other than `source`, not in `avoid` (stranded,
    failing), not looking stalled, and in `permitted` when given (model placement, data
    residency). Those with proof of a consumer are used first; idle ones only when none has
    proof. Among them the routing strategy decides, each choice seeing the ones before it.
    """
    candidates = [
        load
        for load in loads
        if load.region != source
        and load.region not in avoid
        and (permitted is None or load.region in permitted)
        and not looks_stalled(load)
    ]
    proven = [load for load in candidates if has_consumer_proof(load)]
    pool = proven or candidates
    if not pool:
        return [None] * count
    return assign_regions(strategy, pool, count, rng, max_depth)
