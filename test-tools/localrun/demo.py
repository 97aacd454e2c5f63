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
from collections.abc import Sequence
from pathlib import Path

from localrun.demo_options import DemoOptions
from localrun.demo_run import run_demo
from localrun.demo_text import format_summary
from localrun.function_log import function_output
from localrun.report import write_report
from localrun.server import FAKE_CREDENTIALS
from localrun.templates import REGIONS
from localrun.workers import WorkerFailure, WorkerOptions
from orchestrator.core.command import Command, ExitCode
from orchestrator.core.stackfile import stack_file_path


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
    parser.add_argument(
        "--high-share",
        type=float,
        default=d.high_share,
        help="share of the requests that are high-priority (0-1)",
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
    if not 0 <= args.high_share <= 1:
        parser.error("--high-share must be between 0 and 1")
    return DemoOptions(
        count=args.count,
        duplicates=args.duplicates,
        malformed=args.malformed,
        retryable=args.retryable,
        permanent=args.permanent,
        high_share=args.high_share,
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
        try:
            result = run_demo(options, console)
        except WorkerFailure as exc:
            print(f"error: {exc}", file=console, flush=True)
            return ExitCode.FAILURES
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
