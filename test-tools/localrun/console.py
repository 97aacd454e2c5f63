"""`make local`: a long-running local stack for the producer, the consumer and the invoker.

Starts moto with the templates' resources, runs the real distributor behind the local SQS
poller (and, with ``--workers``, simulated GPU workers), writes `.local-stack.json`, prints
the exports another terminal needs, then shows queue depths and forwarded counts per region
every second (plain lines when stdout is not a terminal). Ctrl-C (SIGINT) or SIGTERM stops
the pollers and the server and removes the stack file; a second signal exits at once.

    python -m localrun.console [--workers [us-east-1=4,us-west-2=2,us-west-1=1]]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from localrun.demo import DEFAULT_CAPACITIES, REPO_ROOT
from localrun.depths import Depth, read_depth
from localrun.distributor import DistributionTally, distributor_handler
from localrun.function_log import function_output
from localrun.poller import SqsPoller
from localrun.server import FAKE_CREDENTIALS
from localrun.stack import RunningStack, event_source_config, running_stack
from localrun.stackfile import claim_stack_file, release_stack_file, stack_file_path
from localrun.workers import GpuWorkers
from orchestrator.core.command import Command


@dataclass(frozen=True)
class ConsoleOptions:
    stack_file: Path
    log: Path
    workers: Mapping[str, int] | None = None
    pollers: int = 5
    cache_ttl: float = 1.0
    refresh: float = 1.0
    gpu_seconds: float = 0.3
    live: bool | None = None
    """Redraw the table in place; None: when the console is a terminal."""


def exports(local: RunningStack) -> list[str]:
    """Shell lines that point another terminal's tools at this stack."""
    stack = local.stack
    values = {
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": stack.primary_region,
        "MASTER_QUEUE_URL": stack.master_queue_url,
        "DEAD_LETTER_QUEUE_URL": stack.dead_letter_queue_url,
        "IDEMPOTENCY_TABLE_NAME": stack.table_name,
        "REGION_QUEUES": json.dumps(dict(stack.region_queues)),
    }
    for region, url in stack.region_queues.items():
        values[f"QUEUE_{region.upper().replace('-', '_')}"] = url
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]


class DepthTable:
    """The live table, redrawn in place on a terminal; otherwise one plain line per change
    (and one a minute while nothing changes)."""

    HEARTBEAT_SECONDS = 60.0

    def __init__(self, console: TextIO, live: bool) -> None:
        self._console = console
        self._live = live
        self._drawn = 0
        self._last_plain = ""
        self._last_plain_at = 0.0

    def show(self, lines: list[str], plain: str) -> None:
        if self._live:
            if self._drawn:
                self._console.write(f"\x1b[{self._drawn}F\x1b[J")
            self._console.write("\n".join(lines) + "\n")
            self._drawn = len(lines)
        else:
            now = time.monotonic()
            if plain != self._last_plain or now - self._last_plain_at > self.HEARTBEAT_SECONDS:
                self._console.write(time.strftime("%H:%M:%S ") + plain + "\n")
                self._last_plain, self._last_plain_at = plain, now
        self._console.flush()


def plain_line(
    depths: Mapping[str, Depth],
    forwarded: Mapping[str, int],
    processed: Mapping[str, int] | None,
    counts: str,
) -> str:
    """One line: ``name waiting+in flight`` per queue, then forwarded (and processed) counts."""
    parts = []
    for name, depth in depths.items():
        part = f"{name} {depth.visible}+{depth.in_flight}"
        if name in forwarded:
            part += f" fwd {forwarded[name]}"
            if processed is not None:
                part += f" done {processed.get(name, 0)}"
        parts.append(part)
    return " | ".join([*parts, counts])


def table_lines(
    depths: Mapping[str, Depth],
    forwarded: Mapping[str, int],
    processed: Mapping[str, int] | None,
    footer: str,
) -> list[str]:
    head = f"{'queue':<13}{'waiting':>8}{'in flight':>11}{'forwarded':>11}"
    head += f"{'processed':>11}" if processed is not None else ""
    lines = [head]
    for name, depth in depths.items():
        line = f"{name:<13}{depth.visible:>8}{depth.in_flight:>11}"
        if name in forwarded:
            line += f"{forwarded[name]:>11}"
            if processed is not None:
                line += f"{processed.get(name, 0):>11}"
        lines.append(line)
    lines.append(footer)
    return lines


def run_console(options: ConsoleOptions, console: TextIO, stop: threading.Event) -> int:
    with running_stack() as local:
        stack = local.stack
        document = stack.stack_file_document()
        claimed = claim_stack_file(options.stack_file, document)
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
        _print_banner(local, options, claimed, console)
        queues: dict[str, tuple[Any, str]] = {
            "master": (local.sqs[stack.primary_region], stack.master_queue_url),
            **{r: (local.sqs[r], url) for r, url in stack.region_queues.items()},
            "dead-letter": (local.sqs[stack.primary_region], stack.dead_letter_queue_url),
        }
        live = console.isatty() if options.live is None else options.live
        table = DepthTable(console, live)
        started = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    depths = {n: read_depth(c, url) for n, (c, url) in queues.items()}
                except Exception as exc:  # keep the stack up; show the problem
                    console.write(f"depth read failed: {exc}\n")
                    stop.wait(options.refresh)
                    continue
                dispositions, forwarded = tally.snapshot()
                counts = _counts(poller, dispositions)
                uptime = int(time.monotonic() - started)
                footer = f"{counts} · up {uptime // 60:02d}:{uptime % 60:02d}"
                per_region = {r: forwarded.get(r, 0) for r in stack.region_queues}
                processed = dict(workers.processed_per_region()) if workers else None
                table.show(
                    table_lines(depths, per_region, processed, footer),
                    plain_line(depths, per_region, processed, counts),
                )
                stop.wait(options.refresh)
        finally:
            console.write("stopping: pollers")
            console.flush()
            poller.stop()
            if workers is not None:
                console.write(", workers")
                workers.stop()
            if claimed:
                release_stack_file(options.stack_file, document)
            console.write(", server\n")
    console.write("local stack stopped\n")
    console.flush()
    return 0


def _counts(poller: SqsPoller, dispositions: Mapping[str, int]) -> str:
    invocations = poller.invocations
    errors = sum(1 for i in invocations if i.error)
    return (
        f"invocations {len(invocations)} ({errors} failed) · duplicates "
        f"{dispositions.get('duplicate', 0)} · dead-lettered "
        f"{dispositions.get('dead_lettered', 0)} · failed {dispositions.get('failed', 0)}"
    )


def _print_banner(
    local: RunningStack, options: ConsoleOptions, claimed: bool, console: TextIO
) -> None:
    stack = local.stack
    lines = ["# local stack running (moto); in another terminal:", *exports(local), ""]
    if claimed:
        lines.append(f"# stack file: {options.stack_file} (read by test-tools and make invoke)")
    else:
        lines.append(f"# {options.stack_file} belongs to another running stack: not written")
    lines.append(f"# distributor logs: {options.log}")
    if options.workers:
        workers = ", ".join(f"{r} x{n}" for r, n in options.workers.items())
        lines.append(f"# simulated GPU workers: {workers}")
    lines += [
        "# try: python test-tools/producer.py --count 30",
        "#      make invoke EVENT=events/sqs-three-requests.json",
        f"# Ctrl-C stops it. Distributor: {stack.spec.function.name}, CACHE_TTL "
        f"{options.cache_ttl:g} s, {options.pollers} pollers",
        "",
    ]
    console.write("\n".join(lines) + "\n")
    console.flush()


def parse_capacities(text: str) -> dict[str, int]:
    capacities: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        region, _, count = item.partition("=")
        capacities[region.strip()] = int(count)
    return capacities


def parse_args(argv: Sequence[str] | None) -> ConsoleOptions:
    parser = argparse.ArgumentParser(
        prog="orchestrator local", description=__doc__.split("\n\n")[0]
    )
    default = ",".join(f"{r}={n}" for r, n in DEFAULT_CAPACITIES.items())
    parser.add_argument(
        "--workers",
        nargs="?",
        const=default,
        metavar="REGION=N,...",
        help=f"also run simulated GPU workers (default {default})",
    )
    parser.add_argument("--pollers", type=int, default=5)
    parser.add_argument("--cache-ttl", type=float, default=1.0, help="CACHE_TTL (seconds)")
    parser.add_argument("--plain", action="store_true", help="plain lines, no live table")
    parser.add_argument(
        "--log",
        type=Path,
        default=REPO_ROOT / "reports" / "local-distributor.log",
        help="where the distributor's own output goes",
    )
    args = parser.parse_args(argv)
    return ConsoleOptions(
        stack_file=stack_file_path(),
        log=args.log,
        workers=parse_capacities(args.workers) if args.workers else None,
        pollers=args.pollers,
        cache_ttl=args.cache_ttl,
        live=False if args.plain else None,
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
    with function_output(options.log) as console:
        return run_console(options, console, stop)


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
