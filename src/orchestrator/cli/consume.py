"""`orchestrator consume` (also `test-tools/consumer.py`): read the region queues and print how
the distributor spread the requests.

Every queue's depth is read first (that call is also the start-up check). Then one thread per
region long-polls its queue, in batches of 10 with batch deletes, until --max-messages, or no
queue has delivered anything for --idle-timeout seconds, or Ctrl-C; then the statistics are
printed. With --max-messages below the backlog, each region gives its share of the sample in
proportion to its backlog, so the shares show the routing, not which queue answered first.

Exit status: 0 done, 2 usage error or a queue unreachable / failing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from orchestrator.core.command import Command, ExitCode
from orchestrator.core.stackfile import LocalStack, StackFileError, load_stack, stack_file_path

from . import flags
from .distribution import Received, Stats, proportional_quotas
from .output import Output
from .polling import Consumer, QueueTarget
from .preflight import QueueUnusable, check_queue
from .target import (
    UsageError,
    check_queue_region,
    check_region,
    endpoint_for,
    make_session,
    sqs_client,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

PUBLISHED_REGIONS = ("us-east-1", "us-west-2", "us-west-1")
MAX_WAIT_SECONDS = 20
INTERRUPTED = "interrupted"

EXAMPLES = """\
examples:
  # the local stack (`make local`): every region queue, until idle for 10 s
  {prog}

  # against AWS: the published flags, one per region
  {prog} --queue-us-east-1 https://sqs.us-east-1.amazonaws.com/123456789012/q-east \\
      --queue-us-west-2 https://sqs.us-west-2.amazonaws.com/123456789012/q-west \\
      --max-messages 30 --profile default

  # any region; look without taking work away from the workers
  {prog} --queue eu-west-1=https://sqs.eu-west-1.amazonaws.com/123456789012/q --no-delete

Without queue flags the local stack file gives the queues and endpoint (.local-stack.json at
the repository root, or $ORCHESTRATOR_STACK_FILE).

exit status: 0 done, 2 usage error or a queue unreachable, 130 interrupted (Ctrl-C; the
statistics gathered so far are printed first)."""


def _flag_for(region: str) -> str:
    return f"--queue-{region}" if region in PUBLISHED_REGIONS else "--queue"


class _QueueAction(argparse.Action):
    """Collect `--queue-us-east-1 URL` and `--queue REGION=URL` into one ordered list."""

    def __init__(self, *args: Any, region: str | None = None, **kwargs: Any) -> None:
        self.region = region
        super().__init__(*args, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        flag = option_string or "--queue"
        queues: list[tuple[str, str]] = list(getattr(namespace, "queues", None) or [])
        if self.region:
            region, url = self.region, str(values)
        else:
            region, sep, url = str(values).partition("=")
            if not sep or not region or not url:
                parser.error(
                    f"argument {flag}: expected REGION=URL (e.g. us-east-2=https://...), "
                    f"got {values!r}"
                )
            problem = flags.region_problem(region)
            if problem:
                parser.error(f"argument {flag}: {problem}")
        try:
            flags.http_url(url)
            check_queue_region(url, region, f"argument {flag}")
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument {flag}: {exc}")
        except UsageError as exc:
            parser.error(str(exc))
        if any(r == region for r, _ in queues):
            parser.error(f"{flag}: region {region} given more than once")
        queues.append((region, url))
        namespace.queues = queues


def build_parser(prog: str = "orchestrator consume") -> argparse.ArgumentParser:
    p = flags.Parser(
        prog=prog,
        description="Consume the region queues and print the distribution statistics.",
        epilog=EXAMPLES.format(prog=prog),
    )
    p.set_defaults(queues=None)
    for region in PUBLISHED_REGIONS:
        p.add_argument(
            f"--queue-{region}",
            action=_QueueAction,
            region=region,
            dest="queues",
            metavar="URL",
            help=f"queue URL in {region}",
        )
    p.add_argument(
        "--queue",
        action=_QueueAction,
        dest="queues",
        metavar="REGION=URL",
        help="queue URL of any region (repeatable)",
    )
    p.add_argument(
        "--max-messages",
        type=flags.positive_int,
        metavar="N",
        help="stop after N messages, sampled from the regions in proportion to their backlog "
        "(default: until idle)",
    )
    p.add_argument(
        "--wait-seconds",
        type=int,
        default=5,
        help=f"long-poll wait per receive, 0-{MAX_WAIT_SECONDS} (default 5)",
    )
    p.add_argument(
        "--idle-timeout",
        type=flags.finite_float(0, inclusive=False),
        default=10.0,
        metavar="SECONDS",
        help="stop when no queue delivered anything for this long (default 10)",
    )
    p.add_argument(
        "--no-delete",
        action="store_true",
        help="leave messages on the queues (they reappear after the visibility "
        "timeout; each is counted once per run)",
    )
    p.add_argument("--profile", help="AWS named profile (boto3 Session)")
    p.add_argument(
        "--endpoint-url",
        type=flags.http_url,
        help="endpoint for every region, e.g. http://127.0.0.1:4566 (moto, LocalStack)",
    )
    flags.add_output_flags(p, json_help="print the statistics as JSON")
    p.add_argument(
        "--verbose", "-v", action="store_true", help="print one line per received message on stderr"
    )
    return p


def _check_flags(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0 <= args.wait_seconds <= MAX_WAIT_SECONDS:
        p.error(f"--wait-seconds must be between 0 and {MAX_WAIT_SECONDS}")


def resolve_queues(args: argparse.Namespace) -> tuple[list[tuple[str, str]], LocalStack | None]:
    """([(region, url)], the local stack they came from) from the flags or the stack file."""
    if args.queues:
        return args.queues, None
    if args.endpoint_url:
        raise UsageError(
            "--queue-REGION or --queue REGION=URL is required when --endpoint-url is given"
        )
    stack = load_stack()
    if stack is None or not stack.region_queues:
        raise UsageError(
            "give the queues with --queue-us-east-1 URL ... or --queue REGION=URL "
            f"(no local stack file with region_queues at {stack_file_path()})"
        )
    for region in stack.region_queues:
        check_region(region, f"local stack file {stack.path}")
    return list(stack.region_queues.items()), stack


def make_targets(args: argparse.Namespace) -> list[QueueTarget]:
    """One client per region: a queue's region is its client's (on a moto server the queue
    URLs of different regions look alike)."""
    queues, stack = resolve_queues(args)
    if stack is None:
        known = _stack_quietly()
        for region, url in queues:  # local URLs do not say their region; the stack file does
            check_queue_region(url, region, _flag_for(region), known)
    session = make_session(args.profile)
    default_endpoint = args.endpoint_url or (stack.endpoint_url if stack else None)
    return [
        QueueTarget(
            region,
            url,
            # a long poll must not hit the read timeout
            sqs_client(
                session,
                region,
                endpoint_for(url, default_endpoint),
                read_timeout=MAX_WAIT_SECONDS + 20,
            ),
        )
        for region, url in queues
    ]


def _stack_quietly() -> LocalStack | None:
    try:
        return load_stack()
    except StackFileError:
        return None


def _log_message(output: Output) -> Callable[[Received], None]:
    def log(m: Received) -> None:
        latency = m.forward_latency_ms
        extra = f" {latency:.0f} ms since forwarded" if latency is not None else ""
        print(f"{m.region}: {m.request_id} priority={m.priority}{extra}", file=output.stderr)

    return log


def _live_counts(consumer: Consumer) -> Callable[[], RenderableType]:
    def render() -> RenderableType:
        from rich.table import Table

        counts = dict(consumer.counts)  # regions fixed from the start: safe to copy
        total = sum(counts.values())
        goal = f" of {consumer.max_messages}" if consumer.max_messages else ""
        table = Table(title=f"Consuming: {total}{goal} messages", title_justify="left")
        table.add_column("region")
        table.add_column("messages", justify="right")
        table.add_column("quota", justify="right")
        for region, n in counts.items():
            quota = consumer.quotas.get(region) if consumer.quotas is not None else None
            table.add_row(region, str(n), "" if quota is None else str(quota))
        return table

    return render


def main(
    argv: Sequence[str] | None = None,
    targets: Sequence[QueueTarget] | None = None,
    prog: str | None = None,
) -> int:
    """Run the consumer. `targets` (with injected clients) is for tests."""
    p = build_parser(prog) if prog else build_parser()
    args = p.parse_args(argv)
    _check_flags(p, args)
    output = Output(plain=args.plain)
    try:
        return _main(p, args, output, targets)
    except KeyboardInterrupt:  # during start-up; once polling, the statistics are printed
        output.error(INTERRUPTED)
        return ExitCode.INTERRUPTED


def _main(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    output: Output,
    targets: Sequence[QueueTarget] | None,
) -> int:
    if targets is None:
        try:
            targets = make_targets(args)
        except StackFileError as exc:
            p.exit(ExitCode.USAGE, f"error: local stack file: {exc}\n")
        except UsageError as exc:
            p.error(str(exc))
    backlog: dict[str, int | None] = {}
    for target in targets:  # the depth read is also the start-up check of each queue
        try:
            depth = check_queue(target.client, target.queue_url, target.region)
        except QueueUnusable as exc:
            output.error(str(exc))
            return ExitCode.USAGE
        backlog[target.region] = depth.visible if depth is not None else None
    quotas = _quotas(backlog, args.max_messages)
    consumer = Consumer(
        targets,
        max_messages=args.max_messages,
        quotas=quotas,
        wait_seconds=args.wait_seconds,
        idle_timeout=args.idle_timeout,
        delete=not args.no_delete,
        on_message=_log_message(output) if args.verbose else None,
    )
    # with --verbose the lines on stderr are the progress; a live table would tear them
    with output.live(None if args.verbose else _live_counts(consumer)):
        stats = consumer.run()
    stats.backlog = backlog
    stats.sampled = quotas is not None
    _print(output, args, stats)
    if stats.stopped == INTERRUPTED:
        output.error(INTERRUPTED)
        return ExitCode.INTERRUPTED
    if stats.error:
        output.error(stats.error)
        return ExitCode.USAGE
    return ExitCode.OK


def _quotas(backlog: dict[str, int | None], max_messages: int | None) -> dict[str, int] | None:
    """Per-region quotas when --max-messages takes only part of a known backlog, else None
    (everything waiting is taken anyway, so there is nothing to be fair about)."""
    if max_messages is None or any(v is None for v in backlog.values()):
        return None
    known = {region: v or 0 for region, v in backlog.items()}
    if sum(known.values()) <= max_messages:
        return None
    return proportional_quotas(known, max_messages)


def _print(output: Output, args: argparse.Namespace, stats: Stats) -> None:
    if args.json:
        print(json.dumps(stats.as_dict(), indent=2), file=output.stdout)
    else:
        output.print(stats.render(), stats.to_rich() if output.rich_out else None)


COMMAND = Command(summary="consume the region queues and print how requests were spread", main=main)


def run_as_script(prog: str) -> int:
    """Entry point of the published script names (test-tools/*.py)."""
    try:
        return main(prog=prog)
    except KeyboardInterrupt:
        print(f"error: {INTERRUPTED}", file=sys.stderr)
        return ExitCode.INTERRUPTED
