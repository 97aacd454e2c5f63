"""`make demo`: the whole pipeline on this machine, then what happened and an exactly-once audit.

One process runs a moto server with the stack the templates declare (queues, request and
presence tables, results buckets; a callback topic with a subscribed queue), the real
distributor behind a Lambda-like SQS poller and the real rescue function on a timer; the real
worker runs as one process per GPU in three regions (4, 2 and 1), serving a simulated model
(`localrun.models`). It sends a few hundred requests (with client retries, malformed ones and
injected failures) to the master queue, waits until everything is done, prints the
distribution beside each region's capacity, batch sizes, latency, results, notifications,
the rescue's moves, the dead letters and the audit (`localrun.audit`), and writes an HTML
report. Exit status 1 when the audit fails.

    orchestrator demo [--count 300] [--duplicates 30] [--malformed 15] [--seed 7]
                      [--stop us-east-1@4] [--report reports/demo.html]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from localrun.audit import audit
from localrun.demo_text import format_summary
from localrun.depths import DepthSampler, read_depths
from localrun.distributor import DistributionTally, distributor_handler
from localrun.evidence import (
    drain_dead_letters,
    drain_notifications,
    read_result,
    request_records,
)
from localrun.function_log import function_output
from localrun.models import OK, PERMANENT_CODE
from localrun.poller import SqsPoller
from localrun.report import write_report
from localrun.rescue_timer import RescueTimer
from localrun.server import FAKE_CREDENTIALS
from localrun.stack import RunningStack, event_source_config, running_stack
from localrun.stackfile import claim_stack_file, release_stack_file
from localrun.summary import DEAD_LETTERS, MASTER, NOTIFICATIONS, DemoResult
from localrun.templates import REGIONS
from localrun.traffic import plan_traffic, send_traffic
from localrun.workers import WorkerFleet, WorkerOptions
from orchestrator.core.command import Command, ExitCode
from orchestrator.core.record import RequestStatus
from orchestrator.core.sqs import QueueDepth, read_depth
from orchestrator.core.stackfile import stack_file_path

DEFAULT_CAPACITIES = {"us-east-1": 4, "us-west-2": 2, "us-west-1": 1}
REPO_ROOT = Path(__file__).resolve().parents[2]
QUIET_SECONDS = 3.0  # queues empty this long with work missing: it is lost, stop waiting


@dataclass(frozen=True)
class DemoOptions:
    count: int = 300
    duplicates: int = 30
    malformed: int = 15
    retryable: int = 8
    """Valid requests whose first attempt fails (the model's RetryableError)."""
    permanent: int = 5
    """Valid requests that fail for good (the model's PermanentError)."""
    seed: int = 7
    rate: float = 40.0
    """Messages per second sent to the master queue."""
    capacities: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CAPACITIES))
    workers: WorkerOptions = field(default_factory=WorkerOptions)
    pollers: int = 5
    cache_ttl: float = 1.0
    rescue_every: float = 2.0
    """Seconds between rescue runs (the template's schedule: a minute); 0: no rescue."""
    rescue_stall: float = 3.0
    """RESCUE_STALL_SECONDS (the template's: 120)."""
    stop: tuple[str, float] | None = None
    """SIGTERM this region's workers this many seconds after the first send."""
    timeout: float = 90.0
    report: Path = REPO_ROOT / "reports" / "demo.html"
    stack_file: Path | None = None
    """Where to advertise the running stack; None: not at all."""
    name_suffix: str = ""
    sample_interval: float = 0.5
    progress_every: float = 2.0

    def log_path(self, name: str) -> Path:
        """``reports/demo-<name>``, beside the report."""
        return self.report.with_name(f"{self.report.stem}-{name}")


def _queues(local: RunningStack) -> dict[str, tuple[Any, str]]:
    """The queues whose depth the demo watches: master, regions, the master DLQ."""
    stack = local.stack
    queues = {region: (local.sqs[region], url) for region, url in stack.region_queues.items()}
    primary = local.sqs[stack.primary_region]
    queues[MASTER] = (primary, stack.master_queue_url)
    queues[DEAD_LETTERS] = (primary, stack.dead_letter_queue_url)
    return queues


class _Progress:
    def __init__(self, console: TextIO, every: float) -> None:
        self._console = console
        self._every = every
        self._next = 0.0

    def maybe(self, elapsed: float, line: str) -> None:
        if elapsed >= self._next:
            self._next = elapsed + self._every
            print(f"  {elapsed:5.1f}s  {line}", file=self._console, flush=True)


def _describe(
    options: DemoOptions, local: RunningStack, environ: Mapping[str, str], mapping: Any
) -> str:
    stack, w = local.stack, options.workers
    rescue = (
        f"every {options.rescue_every:g} s (deployed: every minute), RESCUE_STALL_SECONDS "
        f"{options.rescue_stall:g}"
        if options.rescue_every > 0
        else "off"
    )
    return (
        f"local stack at {stack.endpoint_url} (moto), resources from infrastructure/*.yaml\n"
        f"distributor {stack.spec.function.handler}: {mapping.pollers} pollers, "
        f"batch {mapping.batch_size}, window {mapping.batching_window:g} s, "
        f"CACHE_TTL {options.cache_ttl:g} s, routing {environ.get('ROUTING_STRATEGY')} "
        "(live capacity from the workers' presence)\n"
        f"rescue {stack.spec.rescue.handler if stack.spec.rescue else '-'}: {rescue}\n"
        "GPU workers (orchestrator worker, one process per GPU): "
        + ", ".join(f"{r} x{n}" for r, n in options.capacities.items())
        + f"; batch {w.batch_size}, max wait {w.max_wait:g} s; simulated model "
        f"{w.call_ms:g} ms per call + {w.item_ms:g} ms per request"
    )


def run_demo(options: DemoOptions, console: TextIO) -> DemoResult:
    """Run the pipeline; the audit is in the result's `checks`."""
    began = time.monotonic()
    with running_stack(name_suffix=options.name_suffix, regions=list(options.capacities)) as local:
        stack = local.stack
        fleet = WorkerFleet(
            stack, options.capacities, options.log_path("workers"), options.workers
        ).start()  # they load while the rest starts
        advertised = stack.advertised(options.stack_file) if options.stack_file else None
        claimed = advertised is not None and claim_stack_file(advertised)
        environ = stack.distributor_environ(CACHE_TTL=f"{options.cache_ttl:g}")
        tally = DistributionTally()
        handler = distributor_handler(environ, local.session, tally)
        mapping = event_source_config(stack, options.pollers)
        print(_describe(options, local, environ, mapping), file=console, flush=True)
        rescue = RescueTimer(
            stack.rescue_environ(
                RESCUE_STALL_SECONDS=f"{options.rescue_stall:g}", RESCUE_MAX_AGE_SECONDS="0"
            ),
            local.session,
            interval=options.rescue_every or 1.0,
            function_name=stack.spec.rescue.name if stack.spec.rescue else "rescue",
            log=options.log_path("rescue.log"),
        )
        sampler = DepthSampler(_queues(local), options.sample_interval)
        poller = SqsPoller(local.sqs[stack.primary_region], mapping, handler)
        stopper: threading.Timer | None = None
        stopped: dict[str, float] = {}
        try:
            fleet.wait_ready()
            print(
                f"  workers ready {time.monotonic() - began:.1f} s after the start",
                file=console,
                flush=True,
            )
            plan = plan_traffic(
                options.count,
                options.duplicates,
                options.malformed,
                options.seed,
                f"demo{options.seed}",
                retryable=options.retryable,
                permanent=options.permanent,
                topic=stack.callback_topic_arn,
            )
            sampler.start()
            poller.start()
            if options.rescue_every > 0:
                rescue.start()
            sending = time.monotonic()
            first_send_at = time.time()
            if options.stop is not None:
                region, after = options.stop
                stopped[region] = after
                stopper = threading.Timer(after, fleet.stop, args=([region],))
                stopper.start()
            sent = send_traffic(
                local.sqs[stack.primary_region], stack.master_queue_url, plan, rate=options.rate
            )
            send_seconds = time.monotonic() - sending
            print(
                f"  sent {len(sent)} messages in {send_seconds:.1f} s; waiting for the workers",
                file=console,
                flush=True,
            )
            expected = {m.request_id for m in plan if m.kind == "valid" and m.request_id}
            progress = _Progress(console, options.progress_every)
            done_seconds = _wait(
                options, local, fleet, poller, rescue, sampler, expected, progress, sending
            )
        finally:
            if stopper is not None:
                stopper.cancel()
                stopper.join()
            poller.stop()
            rescue.stop()
            sampler.stop()
            fleet.signal_stop()  # they drain while the evidence is read
            if claimed and advertised is not None:
                release_stack_file(advertised)
        result = _collect(options, local, fleet, sent, sampler.samples)
        fleet.stop()
        result.final_depths = _final_depths(local)
    result.settings = {
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
        "worker_batch": options.workers.batch_size,
        "call_ms": options.workers.call_ms,
        "item_ms": options.workers.item_ms,
        "rescue_every": options.rescue_every,
        "rescue_stall": options.rescue_stall,
        "send_started_at": round(sending - sampler.started, 3),
        "logs": [
            str(options.log_path("distributor.log")),
            str(options.log_path("rescue.log")),
            str(options.log_path("workers")) + "/",
        ],
    }
    dispositions, forwarded = tally.snapshot()
    result.dispositions, result.forwarded = dispositions, forwarded
    result.forwarded_to = tally.forwarded_to()
    result.first_send_at = first_send_at
    result.invocations = len(poller.invocations)
    result.failed_invocations = sum(1 for i in poller.invocations if i.error)
    result.cold_starts = handler.cold_starts
    result.rescue_runs = rescue.runs
    result.stopped = stopped
    result.worker_exits = fleet.exit_codes()
    result.send_seconds, result.done_seconds = send_seconds, done_seconds
    result.thread_failures = [
        f"{what}: {failure}"
        for what, failure in (
            ("pollers", _named(poller.failure)),
            ("workers", fleet.failure),
            ("rescue", _named(rescue.failure)),
            ("depth sampler", _named(sampler.failure)),
        )
        if failure is not None
    ]
    result.total_seconds = time.monotonic() - began
    result.checks = audit(result)
    return result


def _named(failure: BaseException | None) -> str | None:
    return None if failure is None else f"{type(failure).__name__}: {failure}"


def _wait(
    options: DemoOptions,
    local: RunningStack,
    fleet: WorkerFleet,
    poller: SqsPoller,
    rescue: RescueTimer,
    sampler: DepthSampler,
    expected: set[str],
    progress: _Progress,
    sending: float,
) -> float | None:
    """Seconds from the first send until everything is done; None on timeout or loss. The
    depths are the sampler's (every read is a request moto must answer)."""
    stack = local.stack
    notifications = (local.sqs[stack.primary_region], stack.notification_queue_url)
    quiet_since: float | None = None
    while True:
        time.sleep(options.sample_interval)
        now = time.monotonic()
        latest = sampler.latest()
        if latest is None:
            continue
        depths = latest.depths
        done = {e.request_id for e in fleet.executions() if e.outcome in (OK, PERMANENT_CODE)}
        busy_queues = sum(d.total for name, d in depths.items() if name != DEAD_LETTERS)
        dead = depths[DEAD_LETTERS].visible
        noted = read_depth(*notifications).visible if notifications[1] else len(expected)
        progress.maybe(
            now - sending,
            f"done {len(done & expected)}/{len(expected)} · "
            + " · ".join(
                f"{name} {d.visible}+{d.in_flight}"
                for name, d in depths.items()
                if name != DEAD_LETTERS
            )
            + f" · dead-letter {dead} · notified {noted}",
        )
        if (
            expected <= done
            and busy_queues == 0
            and dead >= options.malformed
            and noted >= len(expected)
        ):
            return now - sending
        if poller.failure or fleet.failure or rescue.failure:
            return None  # nothing more will move; the summary names the defect
        if busy_queues == 0 and poller.busy == 0:
            quiet_since = quiet_since or now
            if now - quiet_since > QUIET_SECONDS:
                return None
        else:
            quiet_since = None
        if now - sending > options.timeout:
            return None


def _collect(
    options: DemoOptions,
    local: RunningStack,
    fleet: WorkerFleet,
    sent: Sequence[Any],
    samples: Sequence[Any],
) -> DemoResult:
    """Read back what the run left: records, results, notifications, dead letters."""
    stack = local.stack
    primary = local.sqs[stack.primary_region]
    records = request_records(local.dynamodb, stack.table_name)
    bucket_regions = {bucket: region for region, bucket in stack.results_buckets.items()}
    results = {
        rid: read_result(record, local.s3, bucket_regions)
        for rid, record in records.items()
        if record.status is RequestStatus.SUCCEEDED
    }
    notifications = (
        drain_notifications(primary, stack.notification_queue_url)
        if stack.notification_queue_url
        else []
    )
    return DemoResult(
        settings={},
        capacities=dict(options.capacities),
        sent=sent,
        records=records,
        executions=fleet.executions(),
        calls=fleet.predict_calls(),
        results=results,
        notifications=notifications,
        dead_letters=drain_dead_letters(primary, stack.dead_letter_queue_url),
        region_dead_letters={
            region: drain_dead_letters(local.sqs[region], url)
            for region, url in stack.region_dead_letter_queues.items()
        },
        samples=samples,
        final_depths={},
    )


def _final_depths(local: RunningStack) -> dict[str, QueueDepth]:
    depths = read_depths(_queues(local))
    stack = local.stack
    if stack.notification_queue_url:
        depths[NOTIFICATIONS] = read_depth(
            local.sqs[stack.primary_region], stack.notification_queue_url
        )
    return depths


def _stop_at(text: str) -> tuple[str, float]:
    region, _, seconds = text.partition("@")
    if region not in REGIONS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the region must be one of {', '.join(REGIONS)}"
        )
    try:
        return region, float(seconds or "4")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected REGION@SECONDS") from None


def parse_args(argv: Sequence[str] | None) -> DemoOptions:
    parser = argparse.ArgumentParser(prog="orchestrator demo", description=__doc__.split("\n\n")[0])
    d = DemoOptions()
    w = d.workers
    parser.add_argument("--count", type=int, default=d.count, help="messages to send")
    parser.add_argument("--duplicates", type=int, default=d.duplicates, help="retries")
    parser.add_argument("--malformed", type=int, default=d.malformed)
    parser.add_argument(
        "--retryable", type=int, default=d.retryable, help="requests that fail once, then succeed"
    )
    parser.add_argument(
        "--permanent", type=int, default=d.permanent, help="requests that fail for good"
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--rate", type=float, default=d.rate, help="messages/second")
    parser.add_argument("--batch-size", type=int, default=w.batch_size, help="worker batch size")
    parser.add_argument("--call-ms", type=float, default=w.call_ms, help="model cost per call")
    parser.add_argument("--item-ms", type=float, default=w.item_ms, help="model cost per request")
    parser.add_argument(
        "--rescue-every", type=float, default=d.rescue_every, help="seconds between rescue runs"
    )
    parser.add_argument(
        "--stop",
        type=_stop_at,
        metavar="REGION@SECONDS",
        help="SIGTERM that region's workers SECONDS after the first send (the rescue moves "
        "their backlog)",
    )
    parser.add_argument("--timeout", type=float, default=d.timeout)
    parser.add_argument("--report", type=Path, default=d.report, help="HTML report path")
    args = parser.parse_args(argv)
    if args.count <= args.duplicates + args.malformed:
        parser.error("--count must be larger than --duplicates + --malformed")
    if args.retryable + args.permanent > args.count - args.duplicates - args.malformed:
        parser.error("--retryable + --permanent must be at most the valid requests")
    return DemoOptions(
        count=args.count,
        duplicates=args.duplicates,
        malformed=args.malformed,
        retryable=args.retryable,
        permanent=args.permanent,
        seed=args.seed,
        rate=args.rate,
        workers=WorkerOptions(
            batch_size=args.batch_size, call_ms=args.call_ms, item_ms=args.item_ms
        ),
        rescue_every=args.rescue_every,
        stop=args.stop,
        timeout=args.timeout,
        report=args.report,
        stack_file=stack_file_path(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    with function_output(options.log_path("distributor.log")) as console:
        print("Multi-Region Inference Orchestrator: local demo", file=console, flush=True)
        result = run_demo(options, console)
        report = write_report(result, options.report)
        print(format_summary(result, _shown(report)), file=console, flush=True)
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
