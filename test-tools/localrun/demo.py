"""`make demo`: the whole pipeline on this machine, then what happened and an exactly-once audit.

One process runs a moto server with the stack the templates declare, the real distributor
behind a Lambda-like SQS poller, and simulated GPU workers in three regions with different
capacities. It sends a few hundred requests (with client retries and malformed ones) to the
master queue, waits until everything is processed or dead-lettered, prints the distribution
beside each region's capacity, the dead-letter reasons, latency percentiles and the audit,
and writes an HTML report. Exit status 1 when the audit fails.

    orchestrator demo [--count 300] [--duplicates 30] [--malformed 15] [--seed 7]
                      [--report reports/demo.html]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from localrun.depths import DepthSampler, read_depths
from localrun.distributor import DistributionTally, distributor_handler
from localrun.function_log import function_output
from localrun.poller import SqsPoller
from localrun.report import write_report
from localrun.server import FAKE_CREDENTIALS
from localrun.stack import RunningStack, event_source_config, running_stack
from localrun.stackfile import claim_stack_file, release_stack_file
from localrun.summary import (
    DEAD_LETTERS,
    MASTER,
    DemoResult,
    audit,
    dead_letter_reasons,
    distribution,
    duplicates_dropped,
    latency_percentiles,
)
from localrun.traffic import plan_traffic, send_traffic
from localrun.workers import GpuWorkers
from orchestrator.core.command import Command, ExitCode
from orchestrator.core.dead_letter import DeadLetter
from orchestrator.core.sqs import QueueDepth, read_depth, receive_all
from orchestrator.core.stackfile import stack_file_path

DEFAULT_CAPACITIES = {"us-east-1": 4, "us-west-2": 2, "us-west-1": 1}
REPO_ROOT = Path(__file__).resolve().parents[2]
QUIET_SECONDS = 3.0  # queues empty this long with work missing: it is lost, stop waiting


@dataclass(frozen=True)
class DemoOptions:
    count: int = 300
    duplicates: int = 30
    malformed: int = 15
    seed: int = 7
    rate: float = 40.0
    """Messages per second sent to the master queue."""
    gpu_seconds: float = 0.3
    capacities: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CAPACITIES))
    pollers: int = 5
    cache_ttl: float = 1.0
    timeout: float = 90.0
    report: Path = REPO_ROOT / "reports" / "demo.html"
    stack_file: Path | None = None
    """Where to advertise the running stack; None: not at all."""
    name_suffix: str = ""
    sample_interval: float = 0.25
    progress_every: float = 2.0


def _region_queues(local: RunningStack) -> dict[str, tuple[Any, str]]:
    stack = local.stack
    queues = {region: (local.sqs[region], url) for region, url in stack.region_queues.items()}
    primary = local.sqs[stack.primary_region]
    queues[MASTER] = (primary, stack.master_queue_url)
    queues[DEAD_LETTERS] = (primary, stack.dead_letter_queue_url)
    return queues


def _drain_dead_letters(client: Any, url: str) -> list[DeadLetter]:
    found: dict[str, DeadLetter] = {}
    for message in receive_all(client, url, visibility_timeout=300):
        found.setdefault(message["MessageId"], DeadLetter.from_message(message))
    return list(found.values())


def _final_depths(local: RunningStack) -> dict[str, QueueDepth]:
    depths = read_depths(_region_queues(local))
    for region, url in local.stack.region_dead_letter_queues.items():
        depths[f"{region} DLQ"] = read_depth(local.sqs[region], url)
    return depths


class _Progress:
    def __init__(self, console: TextIO, every: float) -> None:
        self._console = console
        self._every = every
        self._next = 0.0

    def maybe(self, elapsed: float, line: str) -> None:
        if elapsed >= self._next:
            self._next = elapsed + self._every
            print(f"  {elapsed:5.1f}s  {line}", file=self._console, flush=True)


def run_demo(options: DemoOptions, console: TextIO) -> DemoResult:
    """Run the pipeline; the audit is in the result's `checks`."""
    began = time.monotonic()
    plan = plan_traffic(
        options.count, options.duplicates, options.malformed, options.seed, f"demo{options.seed}"
    )
    expected = {m.request_id for m in plan if m.kind == "valid"}
    with running_stack(name_suffix=options.name_suffix, regions=list(options.capacities)) as local:
        stack = local.stack
        advertised = stack.advertised(options.stack_file) if options.stack_file else None
        claimed = advertised is not None and claim_stack_file(advertised)
        environ = stack.distributor_environ(CACHE_TTL=f"{options.cache_ttl:g}")
        tally = DistributionTally()
        handler = distributor_handler(environ, local.session, tally)
        mapping = event_source_config(stack, options.pollers)
        print(
            f"local stack at {stack.endpoint_url} (moto), resources from infrastructure/*.yaml\n"
            f"distributor {stack.spec.function.handler}: {mapping.pollers} pollers, "
            f"batch {mapping.batch_size}, window {mapping.batching_window:g} s, "
            f"CACHE_TTL {options.cache_ttl:g} s, routing {environ.get('ROUTING_STRATEGY')}\n"
            "GPU workers: "
            + ", ".join(f"{r} x{n}" for r, n in options.capacities.items())
            + f", ~{options.gpu_seconds * 1000:.0f} ms each",
            file=console,
            flush=True,
        )
        sampler = DepthSampler(_region_queues(local), options.sample_interval).start()
        workers = GpuWorkers(
            local.sqs,
            stack.region_queues,
            options.capacities,
            gpu_seconds=options.gpu_seconds,
            seed=options.seed,
        ).start()
        poller = SqsPoller(local.sqs[stack.primary_region], mapping, handler).start()
        progress = _Progress(console, options.progress_every)
        try:
            sending = time.monotonic()
            sent = send_traffic(
                local.sqs[stack.primary_region], stack.master_queue_url, plan, rate=options.rate
            )
            send_seconds = time.monotonic() - sending
            print(
                f"  sent {len(sent)} messages in {send_seconds:.1f} s; waiting for the workers",
                file=console,
                flush=True,
            )
            done_seconds = _wait(options, local, workers, poller, expected, progress, sending)
        finally:
            poller.stop()
            workers.stop()
            sampler.stop()
            if claimed and advertised is not None:
                release_stack_file(advertised)
        primary = local.sqs[stack.primary_region]
        result = DemoResult(
            settings={
                "endpoint": stack.endpoint_url,
                "function": stack.spec.function.name,
                "pollers": mapping.pollers,
                "batch_size": mapping.batch_size,
                "batching_window": mapping.batching_window,
                "cache_ttl": options.cache_ttl,
                "routing": environ.get("ROUTING_STRATEGY", ""),
                "count": options.count,
                "duplicates": options.duplicates,
                "malformed": options.malformed,
                "seed": options.seed,
                "rate": options.rate,
                "gpu_ms": round(options.gpu_seconds * 1000),
                "send_started_at": round(sending - sampler.started, 3),
            },
            capacities=dict(options.capacities),
            sent=sent,
            completions=workers.completions,
            dead_letters=_drain_dead_letters(primary, stack.dead_letter_queue_url),
            samples=sampler.samples,
            final_depths=_final_depths(local),
            dispositions=tally.snapshot()[0],
            forwarded=tally.snapshot()[1],
            invocations=len(poller.invocations),
            failed_invocations=sum(1 for i in poller.invocations if i.error),
            cold_starts=handler.cold_starts,
            send_seconds=send_seconds,
            done_seconds=done_seconds,
            thread_failures=[
                f"{what}: {type(failure).__name__}: {failure}"
                for what, failure in (
                    ("pollers", poller.failure),
                    ("GPU workers", workers.failure),
                    ("depth sampler", sampler.failure),
                )
                if failure is not None
            ],
        )
    result.total_seconds = time.monotonic() - began
    result.checks = audit(result)
    return result


def _wait(
    options: DemoOptions,
    local: RunningStack,
    workers: GpuWorkers,
    poller: SqsPoller,
    expected: set[str | None],
    progress: _Progress,
    sending: float,
) -> float | None:
    """Seconds from the first send until everything is done; None on timeout or loss."""
    queues = _region_queues(local)
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        depths = read_depths(queues)
        processed = workers.processed_request_ids()
        busy_queues = sum(d.total for name, d in depths.items() if name != DEAD_LETTERS)
        dead = depths[DEAD_LETTERS].visible
        progress.maybe(
            now - sending,
            f"processed {len(processed & expected)}/{len(expected)} · "
            + " · ".join(
                f"{name} {d.visible}+{d.in_flight}"
                for name, d in depths.items()
                if name != DEAD_LETTERS
            )
            + f" · dead-letter {dead}",
        )
        if expected <= processed and busy_queues == 0 and dead >= options.malformed:
            return now - sending
        if poller.failure is not None or workers.failure is not None:
            return None  # nothing more will move; the summary names the defect
        if busy_queues == 0 and poller.busy == 0:
            quiet_since = quiet_since or now
            if now - quiet_since > QUIET_SECONDS:
                return None
        else:
            quiet_since = None
        if now - sending > options.timeout:
            return None
        time.sleep(options.sample_interval)


def format_summary(result: DemoResult, report: Path | None, log: Path | None) -> str:
    lines: list[str] = []
    add = lines.append
    valid = len(result.sent_of_kind("valid"))
    dups = len(result.sent_of_kind("duplicate"))
    bad = len(result.sent_of_kind("malformed"))
    add("")
    done = (
        f"everything done {result.done_seconds:.1f} s after the first send"
        if result.done_seconds is not None
        else "NOT everything was done (timed out or lost)"
    )
    add(f"Sent {len(result.sent)} messages: {valid} requests, {dups} retries, {bad} malformed")
    add(done[0].upper() + done[1:])
    add("")
    add("Distribution (requests processed by the GPU workers)")
    header = ("region", "GPUs", "capacity", "processed", "share", "p50 latency")
    add("  {:<11}{:>5}{:>10}{:>11}{:>8}{:>13}".format(*header))
    rows = distribution(result)
    for row in rows:
        p50 = f"{row.p50_latency:.2f} s" if row.p50_latency is not None else "-"
        add(
            f"  {row.region:<11}{row.consumers:>5}{row.capacity_share:>10.1%}"
            f"{row.processed:>11}{row.share:>8.1%}{p50:>13}"
        )
    consumers, processed = sum(r.consumers for r in rows), sum(r.processed for r in rows)
    add(f"  {'total':<11}{consumers:>5}{'':>10}{processed:>11}")
    add("")
    add(
        f"Duplicates dropped: {duplicates_dropped(result)} of {dups} retries "
        f"(the distributor reported {result.dispositions.get('duplicate', 0)} duplicate records)"
    )
    add(f"Dead-letter queue: {len(result.dead_letters)} messages")
    for code, count, examples in dead_letter_reasons(result):
        add(f"  {code:<15}{count:>4}   e.g. {examples[0] if examples else ''}")
        for example in examples[1:]:
            add(f"  {'':<19}        {example}")
    pct = latency_percentiles(result)
    if pct:
        add(
            "End-to-end latency (send -> worker done): "
            + " · ".join(f"{k} {v:.2f} s" for k, v in pct.items())
        )
    add(
        f"Distributor: {result.invocations} invocations ({result.failed_invocations} failed), "
        f"{result.cold_starts} cold starts; records "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.dispositions.items()))
    )
    add("")
    add("Exactly-once audit")
    for check in result.checks:
        add(f"  {'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    for failure in result.thread_failures:
        add(f"  FAIL  a background thread stopped on a defect ({failure}); see stderr")
    add("")
    if report is not None:
        add(f"Report: {report}")
    if log is not None:
        add(f"Distributor logs (its stdout, CloudWatch locally): {log}")
    verdict = "PASSED" if result.passed else "FAILED"
    add(f"Demo took {result.total_seconds:.1f} s; audit {verdict}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> DemoOptions:
    parser = argparse.ArgumentParser(prog="orchestrator demo", description=__doc__.split("\n\n")[0])
    defaults = DemoOptions()
    parser.add_argument("--count", type=int, default=defaults.count, help="messages to send")
    parser.add_argument("--duplicates", type=int, default=defaults.duplicates, help="retries")
    parser.add_argument("--malformed", type=int, default=defaults.malformed)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="messages/second")
    parser.add_argument(
        "--gpu-ms", type=int, default=round(defaults.gpu_seconds * 1000), help="GPU time"
    )
    parser.add_argument("--timeout", type=float, default=defaults.timeout)
    parser.add_argument("--report", type=Path, default=defaults.report, help="HTML report path")
    args = parser.parse_args(argv)
    if args.count <= args.duplicates + args.malformed:
        parser.error("--count must be larger than --duplicates + --malformed")
    return DemoOptions(
        count=args.count,
        duplicates=args.duplicates,
        malformed=args.malformed,
        seed=args.seed,
        rate=args.rate,
        gpu_seconds=args.gpu_ms / 1000,
        timeout=args.timeout,
        report=args.report,
        stack_file=stack_file_path(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    log_path = options.report.with_name(options.report.stem + "-distributor.log")
    with function_output(log_path) as console:
        print("Multi-Region Inference Orchestrator: local demo", file=console, flush=True)
        result = run_demo(options, console)
        report = write_report(result, options.report)
        print(format_summary(result, _shown(report), _shown(log_path)), file=console, flush=True)
    return ExitCode.OK if result.passed else ExitCode.FAILURES


def _shown(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def _main_with_local_credentials(argv: Sequence[str]) -> int:
    # Clients get fake credentials from LocalSession; this covers any other client as well.
    os.environ.update(FAKE_CREDENTIALS)
    return main(argv)


COMMAND = Command(
    summary="run the whole pipeline on this machine and print what happened",
    main=_main_with_local_credentials,
)


if __name__ == "__main__":
    sys.exit(_main_with_local_credentials(sys.argv[1:]))
