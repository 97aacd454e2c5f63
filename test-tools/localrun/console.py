"""`orchestrator local` (`make local`): a long-running local stack for the producer, the
consumer, the invoker, the status command and the AWS CLI.

Starts moto with the templates' resources, runs the real distributor behind the local SQS
poller, the real rescue function on a timer and the real worker (`orchestrator worker`, one
process per GPU: 4, 2 and 1 by default) with the simulated model, advertises the stack in
the stack file, prints what another terminal needs (exports, `orchestrator` and `aws`
commands), then shows every second the queue depths, forwarded and done counts and each
region's live workers (from their presence items): a live table on a terminal, plain lines
otherwise or with ``--plain``. Ctrl-C (SIGINT) or SIGTERM stops the pollers and the rescue,
drains the workers (SIGTERM) and stops the server, and removes the stack file; a second
signal exits at once. A second `orchestrator local` started while one runs gets its own
stack file and logs (named by its port), so the two never touch each other's.

    orchestrator local [--workers us-east-1=4,us-west-2=2,us-west-1=1 | --no-workers] [--plain]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from localrun.console_view import make_view
from localrun.console_watch import Watch
from localrun.demo_options import DEFAULT_CAPACITIES, REPO_ROOT
from localrun.distributor import DistributionTally, distributor_handler
from localrun.function_log import function_output
from localrun.hints import StackFiles, banner, stack_files
from localrun.poller import SqsPoller
from localrun.rescue_timer import RescueTimer
from localrun.server import FAKE_CREDENTIALS
from localrun.stack import RunningStack, event_source_config, running_stack
from localrun.stackfile import claim_stack_file, release_stack_file
from localrun.templates import REGIONS
from localrun.workers import WorkerFailure, WorkerFleet, WorkerOptions
from orchestrator.core.command import Command, ExitCode
from orchestrator.core.stackfile import LocalStack, stack_file_path


@dataclass(frozen=True)
class ConsoleOptions:
    log: Path | None = None
    """The distributor's output; None: chosen per stack (`hints.stack_files`)."""
    reports: Path = REPO_ROOT / "reports"
    workers: Mapping[str, int] | None = None
    """Worker processes per region; None or empty: none."""
    worker_options: WorkerOptions = field(default_factory=WorkerOptions)
    pollers: int = 5
    cache_ttl: float = 1.0
    rescue_every: float = 5.0
    """Seconds between rescue runs; 0: no rescue."""
    rescue_stall: float = 10.0
    """RESCUE_STALL_SECONDS."""
    refresh: float = 1.0
    plain: bool = False
    """Plain lines even on a terminal."""


def run_console(options: ConsoleOptions, stop: threading.Event) -> int:
    """Serve until `stop` is set; the exit status."""
    console = sys.stdout
    with running_stack() as local:
        stack = local.stack
        shared = stack.advertised(stack_file_path())
        holds_shared = claim_stack_file(shared)
        files = stack_files(
            shared.path, holds_shared, stack.endpoint_url, options.reports, options.log
        )
        advertised = shared if holds_shared else stack.advertised(files.stack_file)
        if not holds_shared:
            claim_stack_file(advertised, force=True)  # this stack's own file, named by its port
        try:
            with function_output(files.log) as console:
                status = _serve(local, advertised, files, options, console, stop)
        finally:
            release_stack_file(advertised)
    console.write("local stack stopped\n")
    console.flush()
    return status


def _serve(
    local: RunningStack,
    advertised: LocalStack,
    files: StackFiles,
    options: ConsoleOptions,
    console: TextIO,
    stop: threading.Event,
) -> int:
    stack = local.stack
    fleet = None
    if options.workers:
        fleet = WorkerFleet(stack, options.workers, files.workers, options.worker_options).start()
    tally = DistributionTally()
    environ = stack.distributor_environ(CACHE_TTL=f"{options.cache_ttl:g}")
    handler = distributor_handler(environ, local.session, tally)
    poller = SqsPoller(
        local.sqs[stack.primary_region], event_source_config(stack, options.pollers), handler
    )
    rescue = RescueTimer(
        stack.rescue_environ(
            RESCUE_STALL_SECONDS=f"{options.rescue_stall:g}", RESCUE_MAX_AGE_SECONDS="0"
        ),
        local.session,
        interval=options.rescue_every or 1.0,
        function_name=stack.spec.rescue.name if stack.spec.rescue else "rescue",
        log=files.rescue_log,
    )
    watch = Watch(local, poller, fleet, rescue, tally)
    try:
        if fleet is not None:
            try:
                fleet.wait_ready()
            except WorkerFailure as exc:
                console.write(f"error: {exc}\n")
                return ExitCode.FAILURES
        poller.start()
        if options.rescue_every > 0:
            rescue.start()
        console.write(
            "\n".join(
                banner(
                    advertised,
                    files,
                    _details(options, poller, fleet, stack),
                    stack.callback_topic_arn,
                    stack.high_priority_queues,
                )
            )
            + "\n"
        )
        console.flush()
        with make_view(console, options.plain) as view:
            while not stop.is_set():
                view.show(watch.snapshot())
                stop.wait(options.refresh)
    finally:
        console.write("stopping: pollers, rescue")
        console.flush()
        poller.stop()
        rescue.stop()
        if fleet is not None:
            console.write(", workers (SIGTERM: they drain)")
            console.flush()
            fleet.stop()
        console.write(", server\n")
        console.flush()
    return ExitCode.FAILURES if watch.defect() else ExitCode.OK


def _details(
    options: ConsoleOptions, poller: SqsPoller, fleet: WorkerFleet | None, stack: Any
) -> list[str]:
    details = [
        f"# distributor {stack.spec.function.name}: CACHE_TTL {options.cache_ttl:g} s, "
        f"{poller.config.pollers} pollers; routing reads the workers' presence"
    ]
    if options.rescue_every > 0:
        details.append(
            f"# rescue {stack.spec.rescue.name if stack.spec.rescue else ''}: every "
            f"{options.rescue_every:g} s, RESCUE_STALL_SECONDS {options.rescue_stall:g}"
        )
    if fleet is not None:
        w = options.worker_options
        details.append(
            "# workers (orchestrator worker, simulated model "
            f"{w.call_ms:g} ms + {w.item_ms:g} ms/request, batch {w.batch_size}): "
            + ", ".join(f"{r} x{n}" for r, n in (options.workers or {}).items())
        )
        ports = ", ".join(f"{w.worker_id} :{w.http_port}" for w in fleet.workers if w.http_port)
        details.append(f"# worker /metrics, /healthz, /readyz on 127.0.0.1: {ports}")
    if stack.callback_topic_arn:
        details.append(
            f"# callback topic {stack.callback_topic_arn}: its notifications are counted below"
        )
    return details


def parse_capacities(text: str) -> dict[str, int]:
    """``us-east-1=4,us-west-2=2`` -> ``{"us-east-1": 4, "us-west-2": 2}``; the regions must
    be the local stack's (`argparse.ArgumentTypeError` names the item that is not)."""
    capacities: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        region, _, count = (part.strip() for part in item.partition("="))
        if region not in REGIONS:
            raise argparse.ArgumentTypeError(
                f"{item!r}: the local stack's regions are {', '.join(REGIONS)}"
            )
        if not count.isdigit():
            raise argparse.ArgumentTypeError(f"{item!r}: expected REGION=N with N a whole number")
        capacities[region] = int(count)
    return capacities


def parse_args(argv: Sequence[str] | None) -> ConsoleOptions:
    parser = argparse.ArgumentParser(
        prog="orchestrator local",
        description=__doc__.split("\n\n")[0],
        epilog="example: orchestrator local --workers us-east-1=2,us-west-2=1 --plain",
    )
    default = ",".join(f"{r}={n}" for r, n in DEFAULT_CAPACITIES.items())
    workers = parser.add_mutually_exclusive_group()
    workers.add_argument(
        "--workers",
        type=parse_capacities,
        default=parse_capacities(default),
        metavar="REGION=N,...",
        help=f"worker processes per region (default {default})",
    )
    workers.add_argument(
        "--no-workers", action="store_true", help="no workers: the region queues fill up"
    )
    parser.add_argument("--pollers", type=int, default=5)
    parser.add_argument("--cache-ttl", type=float, default=1.0, help="CACHE_TTL (seconds)")
    parser.add_argument(
        "--rescue-every",
        type=float,
        metavar="SECONDS",
        help=f"run the rescue function this often (default {ConsoleOptions.rescue_every:g}, "
        "0 with --no-workers; 0: never; deployed: every minute)",
    )
    parser.add_argument(
        "--rescue-stall",
        type=float,
        default=ConsoleOptions.rescue_stall,
        metavar="SECONDS",
        help="RESCUE_STALL_SECONDS: a backlog nobody takes for this long is moved",
    )
    parser.add_argument(
        "--plain", action="store_true", help="plain lines, no live table (also when piped)"
    )
    parser.add_argument(
        "--reports",
        type=Path,
        default=ConsoleOptions.reports,
        metavar="DIR",
        help="where the default log goes, and the stack file of a second local stack "
        "(default: the repository's reports/)",
    )
    parser.add_argument(
        "--log",
        type=Path,
        help="where the distributor's own output goes (default DIR/local-distributor.log, or "
        "DIR/local-distributor-PORT.log while another local stack runs)",
    )
    args = parser.parse_args(argv)
    if args.pollers < 1:
        parser.error("--pollers must be at least 1")
    return ConsoleOptions(
        log=args.log,
        reports=args.reports,
        workers=None if args.no_workers else (args.workers or None),
        pollers=args.pollers,
        cache_ttl=args.cache_ttl,
        # Without workers every backlog looks stranded: the rescue would only shuffle it.
        rescue_every=(
            args.rescue_every
            if args.rescue_every is not None
            else (0.0 if args.no_workers else ConsoleOptions.rescue_every)
        ),
        rescue_stall=args.rescue_stall,
        plain=args.plain,
    )


def install_signal_handlers(stop: threading.Event) -> None:
    """First SIGINT/SIGTERM/SIGHUP (the terminal closed): stop cleanly, draining the workers
    and removing the stack file. Second: exit at once."""

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, handle)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    stop = threading.Event()
    install_signal_handlers(stop)
    return run_console(options, stop)


def _main_with_local_credentials(argv: Sequence[str]) -> int:
    # Clients get fake credentials from LocalSession; this covers any other client as well.
    os.environ.update(FAKE_CREDENTIALS)
    return main(argv)


COMMAND = Command(
    summary="a long-running local stack with a live table of queue depths",
    main=_main_with_local_credentials,
)


if __name__ == "__main__":
    sys.exit(_main_with_local_credentials(sys.argv[1:]))
