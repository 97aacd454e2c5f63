"""`orchestrator local` (`make local`): a long-running local stack for the producer, the
consumer, the invoker and the AWS CLI.

Starts moto with the templates' resources, runs the real distributor behind the local SQS
poller (and, with ``--workers``, simulated GPU workers), advertises the stack in the stack
file, prints what another terminal needs (exports, `orchestrator` and `aws` commands), then
shows queue depths and forwarded counts per region every second: a live table on a
terminal, plain lines otherwise or with ``--plain``. Ctrl-C (SIGINT) or SIGTERM stops the
pollers, the workers and the server and removes the stack file; a second signal exits at
once. A second `orchestrator local` started while one runs gets its own stack file and log
(named by its port), so the two never touch each other's.

    orchestrator local [--workers [us-east-1=4,us-west-2=2,us-west-1=1]] [--plain]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from localrun.console_view import Snapshot, make_view
from localrun.demo import DEFAULT_CAPACITIES, REPO_ROOT
from localrun.depths import read_depths
from localrun.distributor import DistributionTally, distributor_handler
from localrun.function_log import function_output
from localrun.hints import StackFiles, banner, stack_files
from localrun.poller import SqsPoller
from localrun.server import FAKE_CREDENTIALS
from localrun.stack import RunningStack, event_source_config, running_stack
from localrun.stackfile import claim_stack_file, release_stack_file
from localrun.templates import REGIONS
from localrun.workers import GpuWorkers
from orchestrator.core.command import Command, ExitCode
from orchestrator.core.errors import AWS_ERRORS, one_line
from orchestrator.core.sqs import QueueDepth
from orchestrator.core.stackfile import LocalStack, stack_file_path


@dataclass(frozen=True)
class ConsoleOptions:
    log: Path | None = None
    """The distributor's output; None: chosen per stack (`hints.stack_files`)."""
    reports: Path = REPO_ROOT / "reports"
    workers: Mapping[str, int] | None = None
    pollers: int = 5
    cache_ttl: float = 1.0
    refresh: float = 1.0
    gpu_seconds: float = 0.3
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
    tally = DistributionTally()
    environ = stack.distributor_environ(CACHE_TTL=f"{options.cache_ttl:g}")
    handler = distributor_handler(environ, local.session, tally)
    poller = SqsPoller(
        local.sqs[stack.primary_region], event_source_config(stack, options.pollers), handler
    ).start()
    workers = None
    if options.workers:
        workers = GpuWorkers(
            local.sqs, stack.region_queues, options.workers, gpu_seconds=options.gpu_seconds
        ).start()
    details = [
        f"# distributor {stack.spec.function.name}: CACHE_TTL {options.cache_ttl:g} s, "
        f"{poller.config.pollers} pollers"
    ]
    if options.workers:
        details.append(
            "# simulated GPU workers: " + ", ".join(f"{r} x{n}" for r, n in options.workers.items())
        )
    console.write("\n".join(banner(advertised, files, details)) + "\n")
    console.flush()
    queues: dict[str, tuple[Any, str]] = {
        "master": (local.sqs[stack.primary_region], stack.master_queue_url),
        **{r: (local.sqs[r], url) for r, url in stack.region_queues.items()},
        "dead-letter": (local.sqs[stack.primary_region], stack.dead_letter_queue_url),
    }
    watch = _Watch(queues, poller, workers, tally, list(stack.region_queues))
    try:
        with make_view(console, options.plain) as view:
            while not stop.is_set():
                view.show(watch.snapshot())
                stop.wait(options.refresh)
    finally:
        console.write("stopping: pollers")
        console.flush()
        poller.stop()
        if workers is not None:
            console.write(", workers")
            workers.stop()
        console.write(", server\n")
        console.flush()
    return ExitCode.FAILURES if watch.defect() else ExitCode.OK


class _Watch:
    """Reads what the table shows; keeps the last depths when a read fails."""

    def __init__(
        self,
        queues: Mapping[str, tuple[Any, str]],
        poller: SqsPoller,
        workers: GpuWorkers | None,
        tally: DistributionTally,
        regions: list[str],
    ) -> None:
        self._queues = queues
        self._poller = poller
        self._workers = workers
        self._tally = tally
        self._regions = regions
        self._depths: dict[str, QueueDepth] = {}
        self._started = time.monotonic()

    def defect(self) -> str | None:
        for what, failure in (
            ("pollers", self._poller.failure),
            ("GPU workers", self._workers.failure if self._workers else None),
        ):
            if failure is not None:
                return f"{what} stopped: {type(failure).__name__}: {failure} (traceback on stderr)"
        return None

    def snapshot(self) -> Snapshot:
        problem = self.defect()
        try:
            self._depths = read_depths(self._queues)
        except AWS_ERRORS as exc:  # keep the stack up; show the problem beside the last figures
            problem = problem or f"depth read failed: {one_line(exc)}"
        dispositions, forwarded = self._tally.snapshot()
        uptime = int(time.monotonic() - self._started)
        return Snapshot(
            depths=self._depths,
            forwarded={r: forwarded.get(r, 0) for r in self._regions},
            processed=dict(self._workers.processed_per_region()) if self._workers else None,
            counts=_counts(self._poller, dispositions),
            uptime=uptime,
            problem=problem,
        )


def _counts(poller: SqsPoller, dispositions: Mapping[str, int]) -> str:
    invocations = poller.invocations
    errors = sum(1 for i in invocations if i.error)
    return (
        f"invocations {len(invocations)} ({errors} failed) · duplicates "
        f"{dispositions.get('duplicate', 0)} · dead-lettered "
        f"{dispositions.get('dead_lettered', 0)} · failed {dispositions.get('failed', 0)}"
    )


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
    parser.add_argument(
        "--workers",
        nargs="?",
        const=parse_capacities(default),
        type=parse_capacities,
        metavar="REGION=N,...",
        help=f"also run simulated GPU workers (default {default})",
    )
    parser.add_argument("--pollers", type=int, default=5)
    parser.add_argument("--cache-ttl", type=float, default=1.0, help="CACHE_TTL (seconds)")
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
        workers=args.workers or None,
        pollers=args.pollers,
        cache_ttl=args.cache_ttl,
        plain=args.plain,
    )


def install_signal_handlers(stop: threading.Event) -> None:
    """First SIGINT/SIGTERM: stop cleanly. Second: exit at once."""

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


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
