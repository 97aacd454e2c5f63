"""Priorities and placement in the simulator, on small seeded runs: high priority waits less,
no request runs outside its permitted regions, every request is accounted for, and the model's
plan is the distributor's."""

from __future__ import annotations

import random
from collections import deque

import pytest

from orchestrator.core import plan
from orchestrator.core.routing import DEFAULT_STRATEGY, RegionLoad, Router
from orchestrator.simulator.contenders import CONTENDERS
from orchestrator.simulator.model import Simulation
from orchestrator.simulator.queues import (
    STANDARD_EVERY,
    Consumer,
    RegionQueue,
    Request,
    next_request,
)
from orchestrator.simulator.scenarios import SCENARIOS

BY_NAME = {c.name: c for c in CONTENDERS}
PRIORITY = SCENARIOS["priority"].shorter(0.3)
PLACEMENT = SCENARIOS["placement"].shorter(0.3)


def run(scenario, name, ttl=10.0, seed=0):
    return Simulation(scenario, BY_NAME[name], ttl, seed).run()


@pytest.mark.parametrize("name", [DEFAULT_STRATEGY, "expected-wait", "oracle"])
@pytest.mark.parametrize("ttl", [10.0, 60.0])
def test_high_priority_waits_less_than_standard(name, ttl):
    result = run(PRIORITY, name, ttl)
    assert result.high_measured > 100
    assert result.high_mean_wait < result.standard_mean_wait / 2
    assert result.high_p99_wait < result.standard_p99_wait


def test_the_default_meets_the_priority_target_on_a_short_run():
    oracle = run(PRIORITY, "oracle")
    ours = run(PRIORITY, DEFAULT_STRATEGY, ttl=10.0)
    assert ours.high_p99_wait <= oracle.p99_wait
    assert ours.standard_p99_wait <= 1.5 * oracle.p99_wait


@pytest.mark.parametrize("name", list(BY_NAME))
def test_no_request_runs_outside_its_permitted_regions(name):
    result = run(PLACEMENT, name, ttl=60.0)
    assert result.dead_lettered > 0  # the big model held to eu-west-1, which does not serve it
    assert result.sent_outside == 0
    assert result.ran_outside == 0
    assert result.created == result.completed + result.in_system + result.dead_lettered


def test_the_rescue_moves_work_only_within_its_permitted_regions():
    # The west region's outage strands work there; the rescue must move some of it and put
    # none of it outside its permitted regions (the big model never to eu-west-1).
    result = run(PLACEMENT, DEFAULT_STRATEGY, ttl=60.0)
    assert result.rescued > 0
    assert result.sent_outside == 0 and result.ran_outside == 0
    assert result.stranded == 0


@pytest.mark.parametrize("scenario", [PRIORITY, PLACEMENT])
def test_every_request_is_accounted_for_with_priorities_and_placement(scenario):
    for name in (DEFAULT_STRATEGY, "round-robin", "oracle"):
        result = run(scenario, name)
        assert result.created == result.completed + result.in_system + result.dead_lettered


def test_the_high_priority_queues_are_read_through_the_real_depth_cache():
    simulation = Simulation(PRIORITY, BY_NAME[DEFAULT_STRATEGY], 10.0, 0)
    simulation.run()
    cache = simulation._containers[0]._cache
    assert set(cache._high_urls) == set(simulation.queues)
    assert all(isinstance(load, RegionLoad) for load in cache.snapshot())


def test_the_outside_counters_see_a_request_put_outside_its_regions():
    simulation = Simulation(PLACEMENT, BY_NAME[DEFAULT_STRATEGY], 10.0, 0)
    request = Request(0, 0.0, True, permitted=frozenset({"eu-west-1"}))
    simulation._enqueue(simulation.queues["us-east-1"], request)
    assert (simulation.sent_outside, simulation.ran_outside) == (1, 1)


def _request(high: bool) -> Request:
    return Request(0, 0.0, True, high=high, permitted=frozenset({"r"}))


def test_a_worker_takes_high_first_but_standard_every_kth_take_under_contention():
    queue = RegionQueue("r", 1)
    queue.high_waiting = deque(_request(True) for _ in range(20))
    queue.waiting = deque(_request(False) for _ in range(20))
    consumer = Consumer()
    taken = [next_request(queue, consumer).high for _ in range(4 * STANDARD_EVERY)]
    assert taken.count(False) == 4
    assert taken[:STANDARD_EVERY] == [True] * (STANDARD_EVERY - 1) + [False]


def test_a_worker_takes_high_whenever_no_standard_work_waits():
    queue = RegionQueue("r", 1)
    queue.high_waiting = deque(_request(True) for _ in range(10))
    consumer = Consumer()
    assert all(next_request(queue, consumer).high for _ in range(10))
    assert next_request(queue, consumer) is None


LOADS = [
    RegionLoad("us-east-1", 30, 12, live_capacity=12.0, high_visible=3),
    RegionLoad("us-west-2", 4, 6, live_capacity=6.0, high_visible=0),
    RegionLoad("eu-west-1", 0, 1, live_capacity=2.0),
]
EVERY = frozenset(load.region for load in LOADS)


@pytest.mark.parametrize("seed", range(5))
def test_the_plan_keeps_every_request_within_its_permitted_regions(seed):
    """The simulator and the distributor share `core.plan` (one copy): each choice is a
    permitted region, and a fresh router with the same seed chooses the same regions."""
    mix = random.Random(seed)
    kinds = [
        (EVERY, False),
        (EVERY, True),
        (frozenset({"us-east-1", "us-west-2"}), False),
        (frozenset({"eu-west-1"}), True),
    ]
    picks = [kinds[mix.randrange(len(kinds))] for _ in range(10)]
    ours = plan.choose_regions(
        Router(DEFAULT_STRATEGY, 5000, random.Random(seed)),
        LOADS,
        [plan.Need(*pick) for pick in picks],
        random.Random(seed + 100),
    )
    theirs = plan.choose_regions(
        Router(DEFAULT_STRATEGY, 5000, random.Random(seed)),
        LOADS,
        [plan.Need(*pick) for pick in picks],
        random.Random(seed + 100),
    )
    assert ours == theirs
    assert all(region in pick[0] for region, pick in zip(ours, picks, strict=True))
