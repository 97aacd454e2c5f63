"""Many runs (scenario x strategy x cache TTL x seed), on one core or several, and their means."""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from orchestrator.simulator.contenders import CONTENDERS, Contender
from orchestrator.simulator.model import RunResult, Simulation
from orchestrator.simulator.scenarios import SCENARIOS, Burst, Scenario


@dataclass(frozen=True, slots=True)
class Job:
    scenario: Scenario
    contender: Contender
    ttl: float
    seed: int
    record_backlog: bool = False


def run_job(job: Job) -> RunResult:
    simulation = Simulation(
        job.scenario, job.contender, job.ttl, job.seed, record_backlog=job.record_backlog
    )
    return simulation.run()


def run_jobs(jobs: Sequence[Job], processes: int) -> list[RunResult]:
    """Every job's result, in the jobs' order."""
    if processes <= 1 or len(jobs) <= 1:
        return [run_job(job) for job in jobs]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return pool.map(run_job, jobs, chunksize=1)


def contenders_named(names: Iterable[str] | None) -> list[Contender]:
    if not names:
        return list(CONTENDERS)
    by_name = {c.name: c for c in CONTENDERS}
    return [by_name[name] for name in names]


BURST_EVERY = 600.0
BURST_LENGTH = 60.0


def scenario(
    name: str,
    *,
    scale: float = 1.0,
    service_mean: float | None = None,
    burst: float | None = None,
) -> Scenario:
    """A named scenario, optionally with another service time, and with bursts: one minute in
    every ten at `burst` times the rate (before `scale` shortens every duration)."""
    chosen = SCENARIOS[name]
    if service_mean is not None:
        chosen = replace(chosen, service_mean=service_mean)
    if burst is not None:
        starts = range(int(BURST_EVERY), int(chosen.horizon), int(BURST_EVERY))
        chosen = replace(chosen, bursts=tuple(Burst(t, t + BURST_LENGTH, burst) for t in starts))
    return chosen if scale == 1.0 else chosen.shorter(scale)


@dataclass(frozen=True, slots=True)
class Summary:
    """The mean over seeds of one scenario x strategy x TTL."""

    scenario: str
    contender: str
    ttl: float
    seeds: int
    mean_wait: float
    p99_wait: float
    stranded: float
    routed_dead: float
    rescued: float
    shares: dict[str, float]
    lost_rate_before: float
    conserved: bool
    """Every request created was completed, dead-lettered or is still somewhere, in every
    seed."""
    high_mean_wait: float = math.nan
    high_p99_wait: float = math.nan
    standard_mean_wait: float = math.nan
    standard_p99_wait: float = math.nan
    dead_lettered: float = 0.0
    outside: int = 0
    """Requests sent to or run in a region outside their permitted ones, over every seed."""


def summarise(results: Iterable[RunResult]) -> dict[tuple[str, float, str], Summary]:
    groups: dict[tuple[str, float, str], list[RunResult]] = {}
    for result in results:
        groups.setdefault((result.scenario, result.ttl, result.contender), []).append(result)
    summaries = {}
    for key, runs in groups.items():
        regions = list(runs[0].shares)
        summaries[key] = Summary(
            scenario=key[0],
            contender=key[2],
            ttl=key[1],
            seeds=len(runs),
            mean_wait=_mean(r.mean_wait for r in runs),
            p99_wait=_mean(r.p99_wait for r in runs),
            stranded=_mean(r.stranded for r in runs),
            routed_dead=_mean(r.routed_dead for r in runs),
            rescued=_mean(r.rescued for r in runs),
            shares={region: _mean(r.shares[region] for r in runs) for region in regions},
            lost_rate_before=_mean(r.lost_rate_before for r in runs),
            conserved=all(r.created == r.completed + r.in_system + r.dead_lettered for r in runs),
            high_mean_wait=_mean(r.high_mean_wait for r in runs),
            high_p99_wait=_mean(r.high_p99_wait for r in runs),
            standard_mean_wait=_mean(r.standard_mean_wait for r in runs),
            standard_p99_wait=_mean(r.standard_p99_wait for r in runs),
            dead_lettered=_mean(r.dead_lettered for r in runs),
            outside=sum(r.sent_outside + r.ran_outside for r in runs),
        )
    return summaries


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else math.nan
