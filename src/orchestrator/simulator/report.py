"""The results as tables (plain text for the terminal, Markdown for docs/routing.md) and the
issue's targets, met or missed, with the published formula beside ours from the same runs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.core.routing import DEFAULT_STRATEGY
from orchestrator.simulator.runner import Summary
from orchestrator.simulator.scenarios import SCENARIOS, Loss

Key = tuple[str, float, str]
Table = list[list[str]]

P99_TARGETS = {10.0: 1.3, 60.0: 1.5}
"""Largest ratio of the default's p99 wait to the oracle's, per cache TTL."""
NEAR_FLOOR = 1.5
"""Sends to a dead region count as near the detection floor up to this multiple of it."""
OUR, PUBLISHED, PREVIOUS, ORACLE = DEFAULT_STRATEGY, "inverse-depth", "expected-wait", "oracle"


def render(table: Table, markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
        lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in table
    )


def _number(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def _count(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def results_table(
    summaries: Mapping[Key, Summary], scenario: str, ttls: Sequence[float], names: Sequence[str]
) -> Table:
    """One row per strategy and TTL: waits (seconds), stranded, sent to no consumer, shares."""
    regions = list(SCENARIOS[scenario].capacities)
    table = [
        [
            "strategy",
            "TTL s",
            "mean wait s",
            "p99 wait s",
            "stranded",
            "to no consumer",
            "rescued",
            "shares % " + "/".join(regions),
        ]
    ]
    for name in names:
        for ttl in ttls:
            s = summaries.get((scenario, ttl, name))
            if s is None:
                continue
            table.append(
                [
                    name + ("" if s.conserved else " (!)"),
                    f"{ttl:g}",
                    _number(s.mean_wait),
                    _number(s.p99_wait),
                    _count(s.stranded),
                    _count(s.routed_dead),
                    _count(s.rescued),
                    "/".join(f"{100 * s.shares[r]:.0f}" for r in regions),
                ]
            )
    return table


@dataclass(frozen=True, slots=True)
class Verdict:
    what: str
    met: bool
    detail: str


def p99_targets(
    summaries: Mapping[Key, Summary], scenarios: Sequence[str] | None = None
) -> tuple[Table, list[Verdict]]:
    """The default's p99 against the oracle's (published and previous formulas beside it).

    `scenarios` defaults to those the issue sets targets for.
    """
    if scenarios is None:
        scenarios = [s.name for s in SCENARIOS.values() if "target" in s.tags]
    table = [
        [
            "scenario",
            "TTL s",
            "oracle p99",
            f"{OUR} p99 (x oracle)",
            "target",
            f"{PUBLISHED} p99 (x)",
            f"{PREVIOUS} p99 (x)",
            f"mean: {OUR} / {PREVIOUS}",
        ]
    ]
    verdicts = []
    for scenario in scenarios:
        for ttl, limit in P99_TARGETS.items():
            got = {n: summaries.get((scenario, ttl, n)) for n in (OUR, PUBLISHED, PREVIOUS, ORACLE)}
            ours, oracle, previous = got[OUR], got[ORACLE], got[PREVIOUS]
            if ours is None or oracle is None:
                continue

            def ratio(s: Summary | None, oracle: Summary = oracle) -> str:
                return (
                    "-" if s is None else f"{s.p99_wait:.2f} ({s.p99_wait / oracle.p99_wait:.2f})"
                )

            mean_ok = previous is None or ours.mean_wait <= previous.mean_wait
            x = ours.p99_wait / oracle.p99_wait
            table.append(
                [
                    scenario,
                    f"{ttl:g}",
                    _number(oracle.p99_wait),
                    ratio(ours),
                    f"<= {limit}",
                    ratio(got[PUBLISHED]),
                    ratio(previous),
                    "-" if previous is None else f"{ours.mean_wait:.2f} / {previous.mean_wait:.2f}",
                ]
            )
            verdicts.append(
                _verdict(f"p99 <= {limit} x oracle, {scenario}, TTL {ttl:g} s", x, limit)
            )
            if previous is not None:
                verdicts.append(
                    Verdict(
                        f"mean wait no worse than {PREVIOUS}, {scenario}, TTL {ttl:g} s",
                        mean_ok,
                        f"{ours.mean_wait:.2f} s vs {previous.mean_wait:.2f} s",
                    )
                )
    return table, verdicts


def _verdict(what: str, value: float, limit: float) -> Verdict:
    if value <= limit:
        return Verdict(what, True, f"{value:.2f}")
    return Verdict(what, False, f"{value:.2f}, missed by {100 * (value / limit - 1):.0f}%")


def detection_targets(summaries: Mapping[Key, Summary]) -> tuple[Table, list[Verdict]]:
    """Sends to a region after its consumers died, against the detection floor.

    The floor (the issue's) is the region's traffic for half a refresh interval (TTL x 1.1 on
    average). After a hard loss nothing can know sooner than the presence records expire
    (lease - heartbeat / 2 later, on average), which the second floor adds; the verdict is
    against the first.
    """
    table = [
        [
            "scenario",
            "TTL s",
            "sends/s there before",
            "floor (1/2 TTL)",
            "floor + presence",
            f"{OUR}",
            f"{PREVIOUS}",
            f"{PUBLISHED}",
            f"stranded at end ({OUR})",
        ]
    ]
    verdicts = []
    for sc in (s for s in SCENARIOS.values() if "loss" in s.tags):
        lost = sc.disruptions[0]
        lease = sc.lease - sc.heartbeat / 2 if lost.loss is Loss.HARD else 0.0
        for ttl in sorted({k[1] for k in summaries if k[0] == sc.name}):
            ours = summaries.get((sc.name, ttl, OUR))
            if ours is None:
                continue
            half = ours.lost_rate_before * 0.55 * ttl
            floor = half + ours.lost_rate_before * lease

            def dead(name: str, ttl: float = ttl, scenario: str = sc.name) -> str:
                s = summaries.get((scenario, ttl, name))
                return "-" if s is None else _count(s.routed_dead)

            table.append(
                [
                    sc.name,
                    f"{ttl:g}",
                    f"{ours.lost_rate_before:.2f}",
                    _count(half),
                    _count(floor),
                    dead(OUR),
                    dead(PREVIOUS),
                    dead(PUBLISHED),
                    _count(ours.stranded),
                ]
            )
            verdicts.append(
                _verdict(
                    f"sends to the dead region <= {NEAR_FLOOR} x the 1/2-TTL floor, "
                    f"{sc.name}, TTL {ttl:g} s",
                    ours.routed_dead / half if half > 0 else math.inf,
                    NEAR_FLOOR,
                )
            )
            verdicts.append(
                Verdict(
                    f"0 stranded at the end, {sc.name}, TTL {ttl:g} s",
                    ours.stranded == 0,
                    f"{ours.stranded:.1f}",
                )
            )
    return table, verdicts


def verdict_lines(verdicts: Sequence[Verdict], markdown: bool = False) -> list[str]:
    if markdown:
        return [f"- {'met' if v.met else '**missed**'}: {v.what}: {v.detail}" for v in verdicts]
    return [f"{'met   ' if v.met else 'MISSED'}  {v.what}: {v.detail}" for v in verdicts]


HIGH_VS_ORACLE = 1.0
"""Largest ratio of the default's high-priority p99 wait to the oracle's p99 for all traffic."""
STANDARD_VS_ORACLE = 1.5
"""Largest ratio of the default's standard p99 wait to the oracle's p99 for all traffic."""


def priority_table(
    summaries: Mapping[Key, Summary], scenario: str, ttls: Sequence[float], names: Sequence[str]
) -> Table:
    """Waits of high-priority and standard requests apart, per strategy and TTL."""
    table = [
        [
            "strategy",
            "TTL s",
            "high mean s",
            "high p99 s",
            "standard mean s",
            "standard p99 s",
            "all p99 s",
        ]
    ]
    for name in names:
        for ttl in ttls:
            s = summaries.get((scenario, ttl, name))
            if s is None:
                continue
            table.append(
                [
                    name,
                    f"{ttl:g}",
                    _number(s.high_mean_wait),
                    _number(s.high_p99_wait),
                    _number(s.standard_mean_wait),
                    _number(s.standard_p99_wait),
                    _number(s.p99_wait),
                ]
            )
    return table


def priority_targets(summaries: Mapping[Key, Summary]) -> tuple[Table, list[Verdict]]:
    """The default's high-priority and standard p99 against the oracle's p99 for all traffic."""
    table = [
        [
            "scenario",
            "TTL s",
            "oracle p99 (all)",
            f"{OUR} high p99 (x)",
            "target",
            f"{OUR} standard p99 (x)",
            "target",
        ]
    ]
    verdicts = []
    for sc in (s for s in SCENARIOS.values() if "priority" in s.tags):
        for ttl in sorted({k[1] for k in summaries if k[0] == sc.name}):
            ours, oracle = summaries.get((sc.name, ttl, OUR)), summaries.get((sc.name, ttl, ORACLE))
            if ours is None or oracle is None:
                continue
            high = ours.high_p99_wait / oracle.p99_wait
            standard = ours.standard_p99_wait / oracle.p99_wait
            table.append(
                [
                    sc.name,
                    f"{ttl:g}",
                    _number(oracle.p99_wait),
                    f"{ours.high_p99_wait:.2f} ({high:.2f})",
                    f"<= {HIGH_VS_ORACLE:g}",
                    f"{ours.standard_p99_wait:.2f} ({standard:.2f})",
                    f"<= {STANDARD_VS_ORACLE:g}",
                ]
            )
            verdicts.append(
                _verdict(
                    f"high-priority p99 <= oracle's p99 (all traffic), {sc.name}, TTL {ttl:g} s",
                    high,
                    HIGH_VS_ORACLE,
                )
            )
            verdicts.append(
                _verdict(
                    f"standard p99 <= {STANDARD_VS_ORACLE:g} x oracle's p99 (all traffic), "
                    f"{sc.name}, TTL {ttl:g} s",
                    standard,
                    STANDARD_VS_ORACLE,
                )
            )
    return table, verdicts


def placement_table(
    summaries: Mapping[Key, Summary], scenario: str, ttls: Sequence[float], names: Sequence[str]
) -> Table:
    """Per strategy and TTL: waits, dead letters, and requests outside their permitted regions."""
    table = [
        [
            "strategy",
            "TTL s",
            "mean wait s",
            "p99 wait s",
            "high p99 s",
            "dead-lettered",
            "outside permitted",
            "rescued",
            "stranded",
        ]
    ]
    for name in names:
        for ttl in ttls:
            s = summaries.get((scenario, ttl, name))
            if s is None:
                continue
            table.append(
                [
                    name + ("" if s.conserved else " (!)"),
                    f"{ttl:g}",
                    _number(s.mean_wait),
                    _number(s.p99_wait),
                    _number(s.high_p99_wait),
                    _count(s.dead_lettered),
                    str(s.outside),
                    _count(s.rescued),
                    _count(s.stranded),
                ]
            )
    return table


def placement_verdicts(summaries: Mapping[Key, Summary]) -> list[Verdict]:
    """No request sent to or run in a region outside its permitted ones, by any strategy."""
    verdicts = []
    for sc in (s for s in SCENARIOS.values() if "placement" in s.tags):
        runs = [s for k, s in summaries.items() if k[0] == sc.name]
        if runs:
            outside = sum(s.outside for s in runs)
            verdicts.append(
                Verdict(
                    f"no request outside its permitted regions, {sc.name}, every strategy",
                    outside == 0,
                    f"{outside} outside",
                )
            )
    return verdicts
