"""The routing simulator on tiny, seeded horizons: the model keeps every request, runs the
real routing code, and tells good routing from bad."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.core.routing import DEFAULT_STRATEGY
from orchestrator.simulator.contenders import CONTENDERS, CacheChooser
from orchestrator.simulator.model import Simulation
from orchestrator.simulator.scenarios import SCENARIOS, Disruption, Loss, Scenario, Zombies

BY_NAME = {c.name: c for c in CONTENDERS}
SMALL = SCENARIOS["hetero"].shorter(0.15)  # 540 s of arrivals, ~2300 requests


def run(scenario, name, ttl=10.0, seed=0):
    return Simulation(scenario, BY_NAME[name], ttl, seed).run()


@pytest.mark.parametrize("name", list(BY_NAME))
def test_every_request_is_completed_or_still_somewhere(name):
    result = run(SMALL, name, ttl=60.0)
    assert result.created > 2000
    assert result.created == result.completed + result.in_system
    assert result.measured > 1500


def test_the_same_seed_gives_the_same_run():
    first, again = run(SMALL, DEFAULT_STRATEGY), run(SMALL, DEFAULT_STRATEGY)
    assert (first.mean_wait, first.p99_wait, first.shares) == (
        again.mean_wait,
        again.p99_wait,
        again.shares,
    )


def test_the_oracle_beats_random_and_the_default_sits_between():
    oracle, default, uniform = (run(SMALL, n) for n in ("oracle", DEFAULT_STRATEGY, "random"))
    assert oracle.p99_wait < default.p99_wait < uniform.p99_wait
    assert oracle.mean_wait < uniform.mean_wait / 10


def test_project_strategies_run_through_a_real_depth_cache():
    simulation = Simulation(SMALL, BY_NAME[DEFAULT_STRATEGY], 10.0, 0)
    assert all(isinstance(c, CacheChooser) for c in simulation._containers)
    simulation.run()
    assert all(c._cache.refreshes > 0 for c in simulation._containers)


HARD_LOSS = Scenario(
    "tiny-hard-loss",
    "two regions, one lost hard at 200 s",
    {"us-east-1": 4, "us-west-2": 4},
    0.5,
    disruptions=(Disruption("us-west-2", 200.0, 4, Loss.HARD),),
    horizon=600.0,
    warmup=60.0,
    drain=600.0,
    invisible_for=120.0,
    tags=("loss",),
)


def test_after_a_hard_loss_rescue_leaves_nothing_stranded_and_the_default_stops_quickly():
    default = run(HARD_LOSS, DEFAULT_STRATEGY)
    blind = run(HARD_LOSS, "round-robin")
    assert default.stranded == 0 and blind.stranded == 0
    assert default.rescued > 0
    assert default.routed_dead < blind.routed_dead / 10
    for result in (default, blind):
        assert result.created == result.completed + result.in_system


def test_without_rescue_a_dead_region_keeps_what_was_sent_there():
    result = run(replace(HARD_LOSS, rescue=False), "round-robin")
    assert result.stranded > 100
    assert result.created == result.completed + result.in_system


def test_zombie_in_flight_attracts_the_previous_default_but_not_the_new_one():
    zombie = Scenario(
        "tiny-zombie",
        "a region with no worker and ten zombie messages",
        {"us-east-1": 4, "eu-west-1": 0},
        0.5,
        zombies=(Zombies("eu-west-1", 10, 900.0),),
        horizon=400.0,
        warmup=30.0,
        drain=60.0,
        rescue=False,
    )
    assert run(zombie, DEFAULT_STRATEGY).routed_dead == 0
    assert run(zombie, "expected-wait").routed_dead > 20


def test_bursts_bring_more_arrivals_in_their_minutes():
    from orchestrator.simulator.runner import scenario

    plain = scenario("equal", scale=0.2)
    bursty = scenario("equal", scale=0.2, burst=3.0)
    assert not plain.bursts and bursty.bursts
    calm, busy = run(plain, "oracle"), run(bursty, "oracle")
    assert busy.created > calm.created * 1.1
    assert busy.created == busy.completed + busy.in_system
