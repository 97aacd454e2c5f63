"""Routing maths: pure functions, checked with properties rather than examples alone."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.routing import (
    RegionLoad,
    assign_regions,
    expected_wait_weights,
    inverse_depth_weights,
    region_weights,
    select_region,
)

REGIONS = ["us-east-1", "us-west-2", "us-west-1", "eu-west-1"]

loads_strategy = st.lists(
    st.builds(
        RegionLoad,
        region=st.sampled_from(REGIONS),
        visible=st.integers(0, 10_000),
        in_flight=st.integers(0, 200),
        available=st.booleans(),
    ),
    min_size=0,
    max_size=4,
    unique_by=lambda load: load.region,
)
strategies = st.sampled_from(["expected-wait", "inverse-depth"])


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


# -- the strategies in a queueing model, read through the real DepthCache -----------------------

from support.queue_sim import simulate  # noqa: E402

CAPACITIES = {"us-east-1": 4, "us-west-2": 2, "us-west-1": 1}


def percentile(values, q):
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def test_at_full_load_shares_follow_capacity_and_waits_stay_short():
    regions = simulate(CAPACITIES, arrivals=7)
    total = sum(r.received for r in regions.values())
    for name, capacity in CAPACITIES.items():
        assert abs(regions[name].received / total - capacity / 7) < 0.03
    waits = [w for r in regions.values() for w in r.waits]
    assert percentile(waits, 0.99) < 15


def test_expected_wait_beats_the_published_formula_on_the_small_region():
    ours = simulate(CAPACITIES, arrivals=6)
    published = simulate(CAPACITIES, arrivals=6, strategy="inverse-depth")
    small = "us-west-1"
    assert percentile(ours[small].waits, 0.9) * 2 < percentile(published[small].waits, 0.9)


def test_a_region_that_loses_its_consumers_stops_receiving_after_one_refresh():
    ticks, dies_at = 2000, 1000
    regions = simulate(CAPACITIES, arrivals=4, ticks=ticks, kill=("us-east-1", dies_at), ttl=5)
    dead = regions["us-east-1"]
    # What it got after dying: at most the messages routed before the next refresh saw it.
    stranded = dead.waiting + dead.in_service
    assert stranded <= 4 * 6 * 2
    assert regions["us-west-2"].received + regions["us-west-1"].received > 0
