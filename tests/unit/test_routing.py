"""Routing maths: pure functions, checked with properties rather than examples alone."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.routing import (
    DEFAULT_STRATEGY,
    FRESH_SECONDS,
    STRATEGY_NAMES,
    RegionLoad,
    Router,
    assign_regions,
    assign_shortest_wait,
    expected_wait_weights,
    high_priority_wait,
    inverse_depth_weights,
    preemption_factor,
    region_weights,
    select_region,
    smooth_capacity_weights,
    trust,
)
from orchestrator.core.stats import percentile

REGIONS = ["us-east-1", "us-west-2", "us-west-1", "eu-west-1"]

loads_strategy = st.lists(
    st.builds(
        RegionLoad,
        region=st.sampled_from(REGIONS),
        visible=st.integers(0, 10_000),
        in_flight=st.integers(0, 200),
        available=st.booleans(),
        live_capacity=st.none() | st.floats(0, 64),
        age=st.floats(0, 600),
        since_drop=st.floats(0, 3600) | st.just(float("inf")),
    ),
    min_size=0,
    max_size=4,
    unique_by=lambda load: load.region,
)
strategies = st.sampled_from(STRATEGY_NAMES)


@given(loads_strategy, strategies, st.integers(1, 10_000), st.randoms(use_true_random=False))
def test_only_eligible_regions_are_ever_chosen(loads, strategy, max_depth, rng):
    chosen = select_region(strategy, loads, rng, max_depth)
    eligible = {x.region for x in loads if x.available and x.visible < max_depth}
    if eligible:
        assert chosen in eligible
    else:
        assert chosen is None


@given(loads_strategy, strategies, st.integers(1, 10_000))
def test_weights_are_finite_non_negative_and_some_positive(loads, strategy, max_depth):
    weights = region_weights(strategy, loads, max_depth)
    assert all(w >= 0 and w == w and w != float("inf") for w in weights.values())
    if weights:
        assert sum(weights.values()) > 0


@given(st.integers(0, 5_000), st.integers(0, 100), st.integers(1, 100))
def test_expected_wait_never_rewards_a_longer_backlog(visible, in_flight, extra):
    a = RegionLoad("a", visible, in_flight)
    b = RegionLoad("b", visible + extra, in_flight)
    other = RegionLoad("c", 10, 4)
    w = expected_wait_weights([a, b, other])
    assert w["b"] <= w["a"]


@given(st.integers(0, 5_000), st.integers(1, 100), st.integers(1, 100))
def test_expected_wait_rewards_more_consumers_at_equal_backlog(visible, in_flight, extra):
    w = expected_wait_weights(
        [RegionLoad("small", visible, in_flight), RegionLoad("big", visible, in_flight + extra)]
    )
    assert w["big"] > w["small"]


def shares(loads, samples=6000):
    counts = Counter(
        select_region("expected-wait", loads, random.Random(seed), 5000) for seed in range(samples)
    )
    return {region: n / samples for region, n in counts.items()}


def test_equal_waits_split_in_proportion_to_capacity():
    """Defect 7 of the published formula: 12 GPUs and 2 GPUs got equal shares."""
    # 12 busy + 59 waiting and 2 busy + 9 waiting: both make a new message wait 5 service times.
    loads = [RegionLoad("twelve", 59, 12), RegionLoad("two", 9, 2)]
    split = shares(loads)
    assert 5.0 < split["twelve"] / split["two"] < 7.2  # 12:2 = 6


def test_equal_depths_favour_the_region_with_more_consumers():
    loads = [RegionLoad("twelve", 24, 12), RegionLoad("two", 24, 2)]
    split = shares(loads)
    assert split["twelve"] > 0.9
    published = inverse_depth_weights(loads)
    assert published["twelve"] == published["two"]


def test_an_idle_region_keeps_the_capacity_it_showed_recently():
    fast_idle = RegionLoad("fast", 0, 0, capacity_hint=8)
    busy = RegionLoad("slow", 3, 2)
    weights = expected_wait_weights([fast_idle, busy])
    assert weights["fast"] > weights["slow"]


def test_pending_sends_do_not_make_an_idle_region_look_stalled():
    idle_with_pending = RegionLoad("idle", 0, 0, pending=5)
    assert expected_wait_weights([idle_with_pending, RegionLoad("b", 5, 1)])["idle"] > 0


def test_a_region_with_a_backlog_and_no_consumers_gets_nothing():
    loads = [RegionLoad("dead", 40, 0), RegionLoad("alive", 400, 3)]
    assert expected_wait_weights(loads)["dead"] == 0
    rng = random.Random(7)
    assert {select_region("expected-wait", loads, rng, 5000) for _ in range(500)} == {"alive"}


def test_idle_empty_regions_share_evenly():
    weights = expected_wait_weights([RegionLoad("a", 0, 0), RegionLoad("b", 0, 0)])
    assert weights == {"a": 1.0, "b": 1.0}


def test_when_every_region_is_stalled_the_queues_still_buffer():
    weights = expected_wait_weights([RegionLoad("a", 9, 0), RegionLoad("b", 99, 0)])
    assert weights == {"a": 0.1, "b": 0.01}


def test_inverse_depth_matches_the_published_example():
    loads = [
        RegionLoad("us-east-1", 10, 0),
        RegionLoad("us-west-2", 5, 0),
        RegionLoad("us-west-1", 15, 0),
    ]
    assert inverse_depth_weights(loads) == {"us-east-1": 6.0, "us-west-2": 11.0, "us-west-1": 1.0}


@settings(max_examples=200)
@given(loads_strategy, strategies, st.integers(0, 50), st.integers(1, 200))
def test_assignments_respect_the_threshold_as_they_fill(loads, strategy, count, max_depth):
    chosen = assign_regions(strategy, loads, count, random.Random(1), max_depth)
    assert len(chosen) == count
    start = {x.region: x.visible for x in loads}
    added = Counter(r for r in chosen if r is not None)
    for region, n in added.items():
        assert start[region] + n <= max_depth
    # Once a message gets None, no region had room, so every later one gets None too.
    if None in chosen:
        assert all(c is None for c in chosen[chosen.index(None) :])


def test_unavailable_regions_are_skipped_even_when_emptiest():
    loads = [RegionLoad("cooling", 0, 10, available=False), RegionLoad("ok", 100, 1)]
    assert {select_region("expected-wait", loads, random.Random(s), 5000) for s in range(100)} == {
        "ok"
    }


# -- smooth-capacity and the Router ----------------------------------------------------------


def shares_of(router, loads, messages):
    """Shares over `messages` choices, each made on the same loads (no pending builds up)."""
    counts = Counter(router.assign(loads, 1)[0] for _ in range(messages))
    return counts


@settings(max_examples=200)
@given(
    loads_strategy,
    st.sampled_from(STRATEGY_NAMES),
    st.integers(1, 10_000),
    st.integers(0, 40),
    st.integers(0, 2**32),
)
def test_a_router_never_picks_an_ineligible_region(loads, strategy, max_depth, count, seed):
    router = Router(strategy, max_depth, random.Random(seed))
    chosen = router.assign(loads, count)
    added = Counter(chosen)
    for region in (r for r in added if r is not None):
        load = next(x for x in loads if x.region == region)
        assert load.available
        assert load.visible + added[region] <= max_depth
        weights = region_weights(strategy, loads, max_depth)
        assert weights[region] > 0


capacities = st.lists(st.integers(1, 24), min_size=1, max_size=4)


@given(capacities, st.integers(0, 2**32), st.floats(0, 120))
def test_at_equal_waits_a_routers_shares_converge_to_capacity(caps, seed, age):
    """Idle regions all promise a wait of zero: the split is the capacity split, and the deficit
    counters keep every region within two messages of its exact share at any point."""
    loads = [
        RegionLoad(REGIONS[i], 0, 0, live_capacity=float(c), age=age) for i, c in enumerate(caps)
    ]
    router = Router(DEFAULT_STRATEGY, 5000, random.Random(seed))
    counts = Counter()
    for sent in range(1, 301):
        counts[router.assign(loads, 1)[0]] += 1
        for load in loads:
            exact = sent * load.live_capacity / sum(caps)
            assert abs(counts[load.region] - exact) <= 2


@given(
    st.lists(st.tuples(st.integers(0, 500), st.integers(1, 40), st.floats(0, 64)), min_size=1),
    st.floats(0, 600),
)
def test_a_region_with_no_live_capacity_gets_nothing(others, age):
    """While another region works (if none does, every queue buffers: see below)."""
    dead = RegionLoad("dead", 0, 0, live_capacity=0.0, age=age)
    alive = [
        RegionLoad(f"r{i}", v, f, live_capacity=c + 1, age=age)
        for i, (v, f, c) in enumerate(others)
    ]
    assert smooth_capacity_weights([dead, *alive])["dead"] == 0
    router = Router(DEFAULT_STRATEGY, 10**9, random.Random(1))
    assert "dead" not in router.assign([dead, *alive], 50)


def _distance_to_capacity_split(loads):
    weights = smooth_capacity_weights(loads)
    total = sum(weights.values())
    capacity = sum(x.live_capacity for x in loads)
    return sum(abs(weights[x.region] / total - x.live_capacity / capacity) for x in loads)


@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(1, 24)), min_size=2, max_size=4),
    st.floats(0, 300),
    st.floats(0, 300),
)
def test_an_older_snapshot_moves_the_weights_toward_the_capacity_split(regions, age, more):
    def at(seconds):
        return [
            RegionLoad(f"r{i}", visible, cap, live_capacity=float(cap), age=seconds)
            for i, (visible, cap) in enumerate(regions)
        ]

    assert (
        _distance_to_capacity_split(at(age + more)) <= _distance_to_capacity_split(at(age)) + 1e-9
    )


def test_a_fresh_snapshot_steers_away_from_a_backlog_and_an_old_one_barely():
    def loads(age):
        return [
            RegionLoad("backlogged", 40, 8, live_capacity=8.0, age=age),
            RegionLoad("idle", 0, 0, live_capacity=8.0, age=age),
        ]

    fresh, old = smooth_capacity_weights(loads(0)), smooth_capacity_weights(loads(600))
    assert fresh["backlogged"] / fresh["idle"] < 0.001
    assert 0.5 < old["backlogged"] / old["idle"] <= 1
    assert trust(0) == 1 and trust(FRESH_SECONDS) == 0.5 and trust(float("inf")) == 0


def test_zombie_in_flight_counts_as_capacity_for_expected_wait_but_not_with_proof_of_work():
    """Ten messages invisible with no worker: SQS shows ten busy GPUs, presence shows none."""
    zombie = RegionLoad("zombie", 0, 10, live_capacity=0.0)
    healthy = RegionLoad("healthy", 20, 10, live_capacity=10.0)
    assert (
        expected_wait_weights([zombie, healthy])["zombie"]
        > expected_wait_weights([zombie, healthy])["healthy"]
    )
    assert smooth_capacity_weights([zombie, healthy])["zombie"] == 0


def test_without_presence_the_sqs_estimate_is_the_capacity():
    loads = [RegionLoad("stalled", 40, 0), RegionLoad("busy", 40, 4), RegionLoad("idle", 0, 0)]
    weights = smooth_capacity_weights(loads)
    assert weights["stalled"] == 0 and weights["busy"] > 0 and weights["idle"] > 0


def test_workers_that_say_they_live_while_a_backlog_sits_untouched_are_not_counted():
    assert (
        smooth_capacity_weights(
            [
                RegionLoad("stuck", 30, 0, live_capacity=8.0),
                RegionLoad("ok", 30, 8, live_capacity=8.0),
            ]
        )["stuck"]
        == 0
    )


def test_a_recently_preempted_region_gets_less_and_is_forgiven_over_minutes():
    def weight(since_drop):
        loads = [
            RegionLoad("preempted", 0, 0, live_capacity=4.0, since_drop=since_drop),
            RegionLoad("steady", 0, 0, live_capacity=4.0),
        ]
        w = smooth_capacity_weights(loads)
        return w["preempted"] / w["steady"]

    assert weight(0) == 0.5
    assert weight(0) < weight(120) < weight(600) < weight(3600) < 1
    assert preemption_factor(float("inf")) == 1


def test_every_region_without_capacity_still_buffers():
    loads = [RegionLoad("a", 9, 0, live_capacity=0.0), RegionLoad("b", 99, 0, live_capacity=0.0)]
    assert smooth_capacity_weights(loads) == {"a": 0.1, "b": 0.01}


def test_a_router_spreads_one_batch_by_capacity_instead_of_drawing_at_random():
    loads = [
        RegionLoad("big", 0, 0, live_capacity=6.0, age=600),
        RegionLoad("small", 0, 0, live_capacity=2.0, age=600),
    ]
    for seed in range(20):
        batch = Router(DEFAULT_STRATEGY, 5000, random.Random(seed)).assign(loads, 8)
        assert Counter(batch)["small"] in (1, 2, 3)  # 2 of 8, give or take the start phase


def test_fresh_routers_do_not_all_start_on_the_same_region():
    loads = [RegionLoad(r, 0, 0, live_capacity=4.0) for r in REGIONS]
    first = {
        Router(DEFAULT_STRATEGY, 5000, random.Random(s)).assign(loads, 1)[0] for s in range(20)
    }
    assert len(first) > 1


def test_an_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown routing strategy"):
        Router("round-robin")


# -- the strategies in a queueing model, read through the real DepthCache -----------------------

from support.queue_sim import simulate  # noqa: E402

CAPACITIES = {"us-east-1": 4, "us-west-2": 2, "us-west-1": 1}
CACHED = ["smooth-capacity", "expected-wait"]


@pytest.mark.parametrize("strategy", CACHED)
def test_at_full_load_shares_follow_capacity_and_waits_stay_short(strategy):
    regions = simulate(CAPACITIES, arrivals=7, strategy=strategy)
    total = sum(r.received for r in regions.values())
    for name, capacity in CAPACITIES.items():
        assert abs(regions[name].received / total - capacity / 7) < 0.03
    waits = [w for r in regions.values() for w in r.waits]
    assert percentile(waits, 99) < 15


@pytest.mark.parametrize("strategy", CACHED)
def test_capacity_aware_strategies_beat_the_published_formula_on_the_small_region(strategy):
    ours = simulate(CAPACITIES, arrivals=6, strategy=strategy)
    published = simulate(CAPACITIES, arrivals=6, strategy="inverse-depth")
    small = "us-west-1"
    assert percentile(ours[small].waits, 90) * 2 < percentile(published[small].waits, 90)


@pytest.mark.parametrize("strategy", CACHED)
def test_a_region_that_loses_its_consumers_stops_receiving_after_one_refresh(strategy):
    ticks, dies_at = 2000, 1000
    regions = simulate(
        CAPACITIES, arrivals=4, ticks=ticks, kill=("us-east-1", dies_at), ttl=5, strategy=strategy
    )
    dead = regions["us-east-1"]
    # What it got after dying: at most the messages routed before the next refresh saw it.
    stranded = dead.waiting + dead.in_service
    assert stranded <= 4 * 6 * 2
    assert regions["us-west-2"].received + regions["us-west-1"].received > 0


# ---------------------------------------------------------------------- high priority
def test_high_priority_joins_the_shortest_high_priority_wait_not_the_standard_backlog():
    loads = [
        RegionLoad("big", 0, 12, live_capacity=12.0, high_visible=6),  # 6 / 12 = 0.5
        RegionLoad("small", 500, 2, live_capacity=2.0, high_visible=0),  # 0, long standard
        RegionLoad("mid", 0, 6, live_capacity=6.0, high_visible=6),  # 1.0
    ]
    assert assign_shortest_wait(loads, 1, max_depth=5000) == ["small"]
    assert high_priority_wait(loads[0]) == 0.5
    assert high_priority_wait(RegionLoad("dead", 3, 0, high_visible=3)) == float("inf")


def test_ties_go_to_the_larger_capacity():
    loads = [
        RegionLoad("two", 0, 2, live_capacity=2.0),
        RegionLoad("twelve", 0, 12, live_capacity=12.0),
        RegionLoad("six", 0, 6, live_capacity=6.0),
    ]
    assert assign_shortest_wait(loads, 1, max_depth=5000) == ["twelve"]


def test_each_high_priority_choice_sees_the_ones_before_it():
    loads = [RegionLoad("a", 0, 4, live_capacity=4.0), RegionLoad("b", 0, 2, live_capacity=2.0)]
    chosen = assign_shortest_wait(loads, 6, max_depth=5000, rng=random.Random(1))
    # a: 0 -> 1/4 -> 2/4 -> 3/4 -> 4/4; b: 0 -> 1/2 -> 2/2: waits stay level, 2:1 overall
    assert Counter(chosen) == {"a": 4, "b": 2}


def test_high_priority_skips_unavailable_full_and_dead_regions_and_buffers_at_worst():
    loads = [
        RegionLoad("cooling", 0, 8, live_capacity=8.0, available=False),
        RegionLoad("full", 100, 8, live_capacity=8.0),
        RegionLoad("dead", 0, 0, live_capacity=0.0, high_visible=0),
        RegionLoad("ok", 5, 1, live_capacity=1.0, high_visible=5),
    ]
    assert assign_shortest_wait(loads, 1, max_depth=100) == ["ok"]
    no_capacity = [
        RegionLoad("a", 9, 0, live_capacity=0.0, high_visible=9),
        RegionLoad("b", 2, 0, live_capacity=0.0, high_visible=2),
    ]
    assert assign_shortest_wait(no_capacity, 1, max_depth=100) == ["b"]  # the queues buffer
    assert assign_shortest_wait(loads[:2], 2, max_depth=100) == [None, None]


def test_high_priority_sends_count_in_both_backlogs():
    load = RegionLoad("a", 10, 1, high_visible=4).plus_high(3)
    assert (load.backlog, load.high_backlog) == (13, 7)
    assert load.plus(2).high_backlog == 7


@given(loads=loads_strategy, count=st.integers(1, 20))
@settings(max_examples=200, deadline=None)
def test_high_priority_choices_are_always_eligible_and_the_least_wait(loads, count):
    unique = list({load.region: load for load in loads}.values())
    chosen = assign_shortest_wait(unique, count, max_depth=5000, rng=random.Random(0))
    allowed = {load.region for load in unique if load.available and load.backlog < 5000}
    assert len(chosen) == count
    assert all(region is None or region in allowed for region in chosen)
    if chosen and chosen[0] is not None:
        first = min(high_priority_wait(load) for load in unique if load.region in allowed)
        picked = next(load for load in unique if load.region == chosen[0])
        assert high_priority_wait(picked) == first
