"""The pure stranding rule and the choice of targets (`orchestrator.core.stranding`)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.routing import STRATEGY_NAMES, RegionLoad
from orchestrator.core.stranding import (
    QueueObservation,
    StrandReason,
    Thresholds,
    has_consumer_proof,
    is_stranded,
    looks_stalled,
    rescue_targets,
    stranded_reason,
    track_stall,
)

counts = st.integers(min_value=0, max_value=50)
capacities = st.one_of(st.none(), st.floats(min_value=0, max_value=20))
ages = st.one_of(st.none(), st.floats(min_value=0, max_value=5000))
observations = st.builds(QueueObservation, counts, counts, ages, capacities)
thresholds = st.builds(
    Thresholds,
    st.floats(min_value=0, max_value=1000),
    st.one_of(st.none(), st.floats(min_value=1, max_value=5000)),
)
REGIONS = ("us-east-1", "us-west-2", "us-west-1", "eu-west-1")


def test_the_two_rules_on_examples() -> None:
    limits = Thresholds(stall_seconds=120, max_age_seconds=600)
    stalled = QueueObservation(visible=5, in_flight=0)
    assert stranded_reason(stalled, 1000.0, 1119.0, limits) is None
    assert stranded_reason(stalled, 1000.0, 1120.0, limits) is StrandReason.NO_CONSUMERS
    draining = QueueObservation(visible=5, in_flight=2, oldest_age=30)
    assert not is_stranded(draining, None, 5000.0, limits)
    zombie = QueueObservation(visible=5, in_flight=2, oldest_age=600)
    assert stranded_reason(zombie, None, 5000.0, limits) is StrandReason.TOO_OLD
    no_workers = QueueObservation(visible=5, in_flight=2, live_capacity=0)
    assert no_workers.stalled
    assert not QueueObservation(visible=0, in_flight=0, oldest_age=10_000).stalled


@given(observations, st.one_of(st.none(), st.floats(0, 1e6)), st.floats(0, 1e6), thresholds)
def test_nothing_waiting_is_never_stranded(
    observation: QueueObservation, since: float | None, now: float, limits: Thresholds
) -> None:
    empty = QueueObservation(0, observation.in_flight, observation.oldest_age)
    assert not is_stranded(empty, since, now, limits)
    assert track_stall(since, empty, now) is None


@given(
    st.lists(st.tuples(st.floats(min_value=0.5, max_value=120), observations), max_size=30),
    thresholds,
)
def test_the_stall_clock_is_the_start_of_the_current_stalled_run(
    samples: list[tuple[float, QueueObservation]], limits: Thresholds
) -> None:
    now, since = 0.0, None
    run_start: float | None = None
    for step, observation in samples:
        now += step
        since = track_stall(since, observation, now)
        run_start = (run_start if run_start is not None else now) if observation.stalled else None
        assert since == run_start
        reason = stranded_reason(observation, since, now, limits)
        stalled_long = run_start is not None and now - run_start >= limits.stall_seconds
        too_old = (
            observation.visible > 0
            and limits.max_age_seconds is not None
            and observation.oldest_age is not None
            and observation.oldest_age >= limits.max_age_seconds
        )
        assert (reason is StrandReason.NO_CONSUMERS) == stalled_long
        assert (reason is not None) == (stalled_long or too_old)


@given(observations, st.floats(0, 1e5), st.floats(0, 1e5), st.floats(0, 1e5), thresholds)
def test_once_stranded_waiting_longer_keeps_it_stranded(
    observation: QueueObservation, since: float, elapsed: float, more: float, limits: Thresholds
) -> None:
    now = since + elapsed
    if is_stranded(observation, since, now, limits):
        assert is_stranded(observation, since, now + more, limits)


loads = st.builds(
    RegionLoad,
    region=st.sampled_from(REGIONS),
    visible=counts,
    in_flight=counts,
    live_capacity=capacities,
)
load_sets = st.lists(loads, min_size=1, max_size=4, unique_by=lambda load: load.region)


@settings(max_examples=200)
@given(
    load_sets,
    st.sampled_from(REGIONS),
    st.sets(st.sampled_from(REGIONS)),
    st.one_of(st.none(), st.sets(st.sampled_from(REGIONS))),
    st.integers(1, 25),
    st.sampled_from(STRATEGY_NAMES),
    st.integers(0, 2**32),
)
def test_targets_are_only_healthy_permitted_other_regions(
    regions: list[RegionLoad],
    source: str,
    avoid: set[str],
    permitted: set[str] | None,
    count: int,
    strategy: str,
    seed: int,
) -> None:
    chosen = rescue_targets(
        source,
        regions,
        count,
        strategy=strategy,
        rng=random.Random(seed),
        max_depth=10_000,
        avoid=avoid,
        permitted=permitted,
    )
    assert len(chosen) == count
    by_region = {load.region: load for load in regions}
    candidates = [
        load
        for load in regions
        if load.region != source
        and load.region not in avoid
        and (permitted is None or load.region in permitted)
        and not looks_stalled(load)
    ]
    proven = {load.region for load in candidates if has_consumer_proof(load)}
    for region in chosen:
        if region is None:
            continue
        load = by_region[region]
        assert region != source and region not in avoid
        assert permitted is None or region in permitted
        assert not looks_stalled(load)
        if proven:
            assert region in proven, "regions with proof of a consumer come first"
    if candidates:
        assert None not in chosen, "a healthy region below the depth limit always takes work"
    else:
        assert chosen == [None] * count


def test_targets_follow_the_routing_strategy_between_proven_regions() -> None:
    regions = [
        RegionLoad("us-east-1", visible=0, in_flight=12),
        RegionLoad("us-west-2", visible=0, in_flight=2),
        RegionLoad("us-west-1", visible=40, in_flight=0),  # the stalled source
        RegionLoad("eu-west-1", visible=0, in_flight=0),  # idle, no proof: not used
    ]
    chosen = rescue_targets(
        "us-west-1",
        regions,
        300,
        strategy="expected-wait",
        rng=random.Random(7),
        max_depth=10_000,
    )
    shares = {region: chosen.count(region) for region in set(chosen)}
    assert set(shares) == {"us-east-1", "us-west-2"}
    assert shares["us-east-1"] > 3 * shares["us-west-2"]


def test_an_idle_region_is_used_when_no_region_has_proof() -> None:
    regions = [
        RegionLoad("us-west-1", visible=40, in_flight=0),
        RegionLoad("us-east-1", visible=0, in_flight=0),
    ]
    chosen = rescue_targets(
        "us-west-1", regions, 3, strategy="expected-wait", rng=random.Random(1), max_depth=100
    )
    assert chosen == ["us-east-1"] * 3


def test_presence_decides_proof_when_it_is_known() -> None:
    dead = RegionLoad("us-east-1", visible=0, in_flight=5, live_capacity=0)  # zombies
    alive = RegionLoad("us-west-2", visible=0, in_flight=0, live_capacity=4)
    assert not has_consumer_proof(dead) and has_consumer_proof(alive)
    chosen = rescue_targets(
        "us-west-1",
        [dead, alive],
        10,
        strategy=STRATEGY_NAMES[0],
        rng=random.Random(3),
        max_depth=100,
    )
    assert chosen == ["us-west-2"] * 10
