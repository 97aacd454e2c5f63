"""``orchestrator simulate``: compare the routing strategies in the discrete-event model.

Prints one table per scenario (each strategy at each cache TTL, averaged over the seeds) and
the issue's targets, met or missed. With ``--out DIR`` it also writes the plots to DIR/img and
the same tables into the generated section of DIR/routing.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from orchestrator.core.command import Command, ExitCode
from orchestrator.simulator.contenders import CONTENDERS
from orchestrator.simulator.model import RunResult
from orchestrator.simulator.report import (
    Table,
    Verdict,
    detection_targets,
    p99_targets,
    placement_table,
    placement_verdicts,
    priority_table,
    priority_targets,
    render,
    results_table,
    verdict_lines,
)
from orchestrator.simulator.runner import (
    Job,
    Summary,
    contenders_named,
    run_jobs,
    scenario,
    summarise,
)
from orchestrator.simulator.scenarios import SCENARIOS, TTLS

SWEEP_TTLS = (2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
SWEEP_SCENARIOS = ("hetero", "equal")
FAST_SERVICE = 1.0
"""Mean service time (s) of the sensitivity check: the same load from four times more, shorter
requests, so a snapshot of a given age is four times older in service times."""
FAST_STRATEGIES = ("inverse-depth", "expected-wait", "smooth-capacity", "oracle")
BEGIN = "<!-- simulate:begin -->"
END = "<!-- simulate:end -->"
EXAMPLES = """examples:
  orchestrator simulate                               hetero and equal, TTL 10 s and 60 s
  orchestrator simulate --scenario loss-hard --seeds 3 --scale 0.5
  orchestrator simulate --all --out docs/             everything, plots, docs/routing.md
"""


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator simulate",
        description=COMMAND.summary,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="every scenario plus the p99-against-TTL sweep (the documented run)",
    )
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), help="repeatable")
    parser.add_argument(
        "--strategy", action="append", choices=[c.name for c in CONTENDERS], help="repeatable"
    )
    parser.add_argument(
        "--ttl", action="append", type=_positive, help="cache TTL in seconds (repeatable)"
    )
    parser.add_argument("--seeds", type=_count, default=5, help="seeds averaged (default 5)")
    parser.add_argument(
        "--scale",
        type=_positive,
        default=1.0,
        help="multiply every scenario's durations (0.25 for a quick look)",
    )
    parser.add_argument(
        "--service-mean", type=_positive, help="mean GPU service time in seconds (default 4)"
    )
    parser.add_argument(
        "--burst",
        type=_positive,
        help="arrival bursts: one minute in every ten at this many times the rate",
    )
    parser.add_argument(
        "--jobs",
        type=_count,
        default=min(2, os.cpu_count() or 1),
        help="processes (default 2)",
    )
    parser.add_argument(
        "--out", type=Path, help="write plots to OUT/img and the results into OUT/routing.md"
    )
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    if args.out is not None and not args.out.is_dir():
        print(f"orchestrator simulate: --out: {args.out} is not a directory", file=sys.stderr)
        return ExitCode.USAGE
    names = args.scenario or (list(SCENARIOS) if args.all else ["hetero", "equal"])
    ttls = sorted(set(args.ttl or TTLS))
    contenders = contenders_named(args.strategy)
    sweep = sorted(set(SWEEP_TTLS) - set(ttls)) if args.all else []
    plot_ttl = max(ttls)

    jobs = []
    for name in names:
        sc = scenario(name, scale=args.scale, service_mean=args.service_mean, burst=args.burst)
        for contender in contenders:
            # Strategies that read no cache do the same thing at every TTL: run them once.
            runs_at = ttls if contender.kind == "cache" else ttls[:1]
            if name in SWEEP_SCENARIOS and contender.kind == "cache":
                runs_at = [*runs_at, *sweep]
            for ttl in runs_at:
                for seed in range(args.seeds):
                    record = args.out is not None and seed == 0
                    jobs.append(Job(sc, contender, ttl, seed, record_backlog=record))
    fast = []
    if args.all and args.service_mean is None and args.burst is None:
        fast = [f"{name}@{FAST_SERVICE:g}s" for name in SWEEP_SCENARIOS]
        for name, label in zip(SWEEP_SCENARIOS, fast, strict=True):
            sc = replace(scenario(name, scale=args.scale, service_mean=FAST_SERVICE), name=label)
            for contender in contenders_named(FAST_STRATEGIES):
                for ttl in ttls if contender.kind == "cache" else ttls[:1]:
                    jobs += [Job(sc, contender, ttl, seed) for seed in range(min(3, args.seeds))]
    print(
        f"{len(jobs)} runs ({len(names)} scenarios, {len(contenders)} strategies, TTL "
        f"{', '.join(f'{t:g}' for t in ttls)} s, {args.seeds} seeds, "
        f"{SCENARIOS[names[0]].containers} containers) on {args.jobs} processes...",
        file=sys.stderr,
        flush=True,
    )
    started = time.perf_counter()
    results = _spread_over_ttls(run_jobs(jobs, args.jobs), [*ttls, *sweep], contenders)
    elapsed = time.perf_counter() - started
    summaries = summarise(results)
    order = [c.name for c in contenders]

    sections = []
    for name in names:
        tables = [results_table(summaries, name, ttls, order)]
        if SCENARIOS[name].high_share > 0:
            tables.append(priority_table(summaries, name, ttls, order))
        if "placement" in SCENARIOS[name].tags:
            tables.append(placement_table(summaries, name, ttls, order))
        sections.append((name, tables))
        print(f"\n{name}: {SCENARIOS[name].title}")
        print("\n\n".join(render(table, markdown=False) for table in tables))
    p99_table, p99_verdicts = p99_targets(summaries)
    floor_table, floor_verdicts = detection_targets(summaries)
    priority, priority_verdicts = priority_targets(summaries)
    fast_table = p99_targets(summaries, fast)[0] if fast else []
    verdicts = p99_verdicts + floor_verdicts + priority_verdicts + placement_verdicts(summaries)
    print(f"\nTargets (mean of {args.seeds} seeds; waits in seconds)")
    for table in (p99_table, floor_table, priority):
        if len(table) > 1:
            print(render(table, markdown=False))
            print()
    if fast_table:
        print(f"Sensitivity: service mean {FAST_SERVICE:g} s, {min(3, args.seeds)} seeds")
        print(render(fast_table, markdown=False))
        print()
    print("\n".join(verdict_lines(verdicts)))
    print(f"\n{len(jobs)} runs in {elapsed:.0f} s", file=sys.stderr)

    if args.out is not None:
        images = _plots(args.out, results, summaries, names, [*ttls, *sweep], order, plot_ttl)
        _write_docs(
            args.out / "routing.md",
            _markdown(
                args,
                sections,
                [p99_table, floor_table, priority],
                fast_table,
                verdicts,
                images,
                plot_ttl,
            ),
        )
        print(f"wrote {args.out / 'routing.md'} and {len(images)} plots", file=sys.stderr)
    return ExitCode.OK


def _spread_over_ttls(
    results: list[RunResult], ttls: Sequence[float], contenders: Sequence[object]
) -> list[RunResult]:
    """Copies of the TTL-independent strategies' runs at every TTL, for the tables."""
    cache_kinds = {c.name for c in CONTENDERS if c.kind == "cache"}
    spread = []
    for result in results:
        spread.append(result)
        if result.contender not in cache_kinds:
            spread.extend(replace(result, ttl=ttl) for ttl in ttls if ttl != result.ttl)
    return spread


def _plots(
    out: Path,
    results: list[RunResult],
    summaries: dict[tuple[str, float, str], Summary],
    names: Sequence[str],
    ttls: Sequence[float],
    order: Sequence[str],
    plot_ttl: float,
) -> dict[str, str]:
    from orchestrator.simulator.plots import backlog_plot, ttl_plot

    folder = out / "img"
    folder.mkdir(exist_ok=True)
    images = {}
    for name in names:
        runs = [
            r
            for r in results
            if r.scenario == name and r.ttl == plot_ttl and r.seed == 0 and r.backlog_times
        ]
        runs.sort(key=lambda r: order.index(r.contender))
        if runs:
            path = backlog_plot(runs, folder / f"routing-backlog-{name}.png")
            images[name] = f"img/{path.name}"
    swept = [n for n in SWEEP_SCENARIOS if n in names]
    if swept:
        path = ttl_plot(summaries, swept, sorted(ttls), order, folder / "routing-p99-vs-ttl.png")
        images["ttl"] = f"img/{path.name}"
    return images


def _markdown(
    args: argparse.Namespace,
    sections: list[tuple[str, list[Table]]],
    target_tables: list[Table],
    fast_table: Table,
    verdicts: list[Verdict],
    images: dict[str, str],
    plot_ttl: float,
) -> str:
    first = scenario(
        sections[0][0], scale=args.scale, service_mean=args.service_mean, burst=args.burst
    )
    command = "orchestrator simulate " + " ".join(_argv_echo(args))
    lines = [
        BEGIN,
        "",
        f"_Generated by `{command}`; edits inside this section are overwritten._",
        "",
        f"Mean of {args.seeds} seeds; {first.containers} containers; GPU service time "
        f"lognormal, mean {first.service_mean:g} s (sigma of its log {first.service_sigma:g}); "
        f"arrivals for {first.horizon:g} s, measured after {first.warmup:g} s, then "
        f"{first.drain:g} s to drain"
        + (f"; bursts of {args.burst:g}x the rate, one minute in ten" if args.burst else "")
        + ". Waits are seconds in the region queue (for a request pushed back to the master "
        "queue, from the first attempt to route it); a request still unserved at the end counts "
        "with the wait it has so far. With priorities, high and standard waits are also shown "
        "apart; the priority targets compare both with the oracle's p99 for all traffic.",
        "",
        "### Targets",
        "",
        *(
            line
            for table in target_tables
            if len(table) > 1
            for line in (render(table, markdown=True), "")
        ),
        *verdict_lines(verdicts, markdown=True),
        "",
    ]
    if fast_table:
        lines += [
            f"Sensitivity, not a target: the same scenarios with a mean service time of "
            f"{FAST_SERVICE:g} s (four times as many, shorter requests at the same load, so a "
            f"snapshot of the same age is four times as old in service times; "
            f"{min(3, args.seeds)} seeds):",
            "",
            render(fast_table, markdown=True),
            "",
        ]
    if "ttl" in images:
        lines += [
            "### p99 wait against cache TTL",
            "",
            f"![p99 wait against TTL]({images['ttl']})",
            "",
        ]
    lines += ["### Every scenario", ""]
    for name, tables in sections:
        lines += [f"#### {name}: {SCENARIOS[name].title}", ""]
        for table in tables:
            lines += [render(table, markdown=True), ""]
        if name in images:
            lines += [
                f"![backlog per region, {name}, TTL {plot_ttl:g} s]({images[name]})",
                "",
            ]
    lines.append(END)
    return "\n".join(lines)


def _argv_echo(args: argparse.Namespace) -> list[str]:
    parts = ["--all"] if args.all else []
    parts += [f"--scenario {s}" for s in args.scenario or []]
    parts += [f"--strategy {s}" for s in args.strategy or []]
    parts += [f"--ttl {t:g}" for t in args.ttl or []]
    if args.seeds != 5:
        parts.append(f"--seeds {args.seeds}")
    if args.scale != 1.0:
        parts.append(f"--scale {args.scale:g}")
    if args.service_mean is not None:
        parts.append(f"--service-mean {args.service_mean:g}")
    if args.burst is not None:
        parts.append(f"--burst {args.burst:g}")
    parts.append(f"--out {args.out}")
    return parts


def _write_docs(path: Path, section: str) -> None:
    """Replace the generated section of `path` (or append one; create the file if needed)."""
    text = path.read_text() if path.exists() else "# Routing\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


COMMAND = Command(
    summary="Compare the routing strategies in a discrete-event model of the whole path",
    main=main,
)
