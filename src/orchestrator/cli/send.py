"""`orchestrator send` (the producer, also `test-tools/producer.py`): send test inference
requests to the master queue, and with ``--wait`` follow them to their results.

Exit status: 0 every message sent (and with --wait every request SUCCEEDED), 1 some sends
failed (or with --wait a request failed, expired or was not done in time), 2 usage error or
SQS unreachable, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from orchestrator.core.command import Command, ExitCode
from orchestrator.core.regions import region_from_queue_url
from orchestrator.core.request import InvalidRequestError, parse_request
from orchestrator.core.sqs import MAX_BATCH_ENTRIES
from orchestrator.core.stackfile import LocalStack, StackFileError, load_stack, stack_file_path

from . import flags
from .output import Output
from .preflight import QueueUnusable, check_queue
from .records import RecordReadError, RequestTable
from .sender import INTERRUPTED, SendReport, send_messages
from .target import (
    UsageError,
    check_queue_region,
    check_region,
    default_region,
    dynamodb_client,
    endpoint_for,
    make_session,
    sqs_client,
)
from .traffic import DEFAULT_MODEL, PRIORITIES, Planned, body_of, plan_messages
from .wait import Waiter, WaitReport, render_stages, result_line, result_text

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient
    from rich.console import RenderableType

TABLE_ENV = "IDEMPOTENCY_TABLE_NAME"
TABLE_REGION_ENV = "IDEMPOTENCY_TABLE_REGION"
DEFAULT_WAIT_TIMEOUT = 300.0

# flag that supplies each request field, so a validation error names what the user typed
_FIELD_FLAGS = {
    "request_id": "--request-id",
    "model_name": "--model",
    "callback_sns_topic": "--callback-sns-topic",
}

EXAMPLES = """\
examples:
  # 30 requests to the local stack (`make local`), one every 0.2 s
  {prog} --count 30 --interval 0.2

  # against AWS, in batches of 10, with 5 malformed messages for the dead-letter queue
  {prog} --queue-url https://sqs.us-east-1.amazonaws.com/123456789012/inference-master-queue-dev \\
      --count 100 --batch-size 10 --malformed 5 --profile default

  # send 5 and wait for their results (the request records in the request table)
  {prog} --count 5 --wait --wait-timeout 120

Without --queue-url the local stack file gives the queue, endpoint, region and table
(.local-stack.json at the repository root, or $ORCHESTRATOR_STACK_FILE). A queue URL that is
not on AWS (http://127.0.0.1:PORT/...) is sent to that host unless --endpoint-url says otherwise.

exit status: 0 all sent (with --wait: all SUCCEEDED), 1 some sends failed (with --wait: a
request FAILED, EXPIRED or was not done in time), 2 usage error or SQS unreachable,
130 interrupted (Ctrl-C)."""


@dataclass(frozen=True)
class SendTarget:
    queue_url: str
    region: str
    endpoint_url: str | None
    session: boto3.Session
    stack: LocalStack | None
    """The local stack the queue belongs to (from the stack file, or a URL it lists)."""


def build_parser(prog: str = "orchestrator send") -> argparse.ArgumentParser:
    p = flags.Parser(
        prog=prog,
        description="Send test inference requests to the master queue.",
        epilog=EXAMPLES.format(prog=prog),
    )
    p.add_argument(
        "--queue-url", type=flags.http_url, help="master queue URL (default: the stack file)"
    )
    p.add_argument("--count", type=int, default=10, help="valid requests to send (default 10)")
    p.add_argument(
        "--interval",
        type=flags.finite_float(0),
        metavar="SECONDS",
        help="seconds between send calls (default 0)",
    )
    p.add_argument(
        "--rate",
        type=flags.finite_float(0, inclusive=False),
        help="messages per second (excludes --interval)",
    )
    p.add_argument(
        "--batch-size", type=int, default=1, help="1 = SendMessage, 2-10 = SendMessageBatch"
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model_name (default {DEFAULT_MODEL})")
    p.add_argument(
        "--priority",
        default="normal",
        choices=[*PRIORITIES, "mixed"],
        help="request priority; mixed cycles high/normal/low (default normal)",
    )
    p.add_argument(
        "--duplicate",
        action="store_true",
        help="send every message with the same request_id (idempotency test)",
    )
    p.add_argument(
        "--request-id",
        help="fixed request_id; with --count > 1 and no --duplicate each message gets a "
        "-1, -2, ... suffix (zero-padded to the width of --count)",
    )
    p.add_argument("--callback-sns-topic", help="callback_sns_topic ARN (default: a dummy ARN)")
    p.add_argument(
        "--malformed",
        type=int,
        default=0,
        metavar="N",
        help="also send N malformed messages from the catalogue (bad JSON, missing or invalid "
        "fields...), spread among the valid ones; they end up in the dead-letter queue",
    )
    p.add_argument("--profile", help="AWS named profile (boto3 Session)")
    p.add_argument(
        "--region",
        type=flags.region,
        help="region of the queue (default: from the URL, the stack file or the profile)",
    )
    p.add_argument(
        "--endpoint-url",
        type=flags.http_url,
        help="endpoint for every call, e.g. http://127.0.0.1:4566 (moto, LocalStack)",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="report progress even when stderr is not a terminal (one line per tenth)",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="after sending, follow the requests' records until each is done, printing "
        "results and errors as they arrive",
    )
    p.add_argument(
        "--wait-timeout",
        type=flags.finite_float(0, inclusive=False),
        default=DEFAULT_WAIT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up waiting after this long (default {DEFAULT_WAIT_TIMEOUT:g})",
    )
    p.add_argument(
        "--table",
        help=f"request table for --wait (default: ${TABLE_ENV}, else the stack file); its "
        f"region is ${TABLE_REGION_ENV}, else the queue's",
    )
    flags.add_output_flags(p, json_help="print the summary as JSON on stdout")
    return p


def _check_flags(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.count < 0 or (args.count == 0 and args.malformed <= 0):
        p.error("--count must be ≥ 1 (0 only together with --malformed)")
    if args.malformed < 0:
        p.error("--malformed must be ≥ 0")
    if args.interval is not None and args.rate is not None:
        p.error("--interval and --rate cannot be used together")
    if not 1 <= args.batch_size <= MAX_BATCH_ENTRIES:
        p.error(f"--batch-size must be between 1 and {MAX_BATCH_ENTRIES}")
    if args.duplicate and args.count < 1:
        p.error("--duplicate needs --count ≥ 1")
    if args.table and not args.wait:
        p.error("--table is used only with --wait")


def _validate_requests(
    p: argparse.ArgumentParser, args: argparse.Namespace, plan: list[Planned]
) -> None:
    """Every valid message must pass the distributor's own parser; a failure names the flag."""
    seen: set[tuple[str, str]] = set()
    for item in plan:
        if not item.valid or (item.request_id, item.priority) in seen:
            continue
        seen.add((item.request_id, item.priority))
        try:
            parse_request(body_of(item, args.model, args.callback_sns_topic))
        except InvalidRequestError as exc:
            flag = _FIELD_FLAGS.get(exc.field or "", "request")
            p.error(f"{flag}: {exc.message}")


def resolve_target(args: argparse.Namespace) -> SendTarget:
    """Queue, region and endpoint from the flags or the local stack file, all checked."""
    stack: LocalStack | None
    if args.queue_url:
        queue_url = args.queue_url
        # a URL of the running local stack, given by hand, still gets the stack's region,
        # endpoint and table; a stack file that does not know the URL has no say
        known = _stack_quietly()
        stack = known if known and known.region_of(queue_url) else None
    elif args.endpoint_url:
        raise UsageError("--queue-url is required when --endpoint-url is given")
    else:
        stack = load_stack()
        if stack is None:
            raise UsageError(
                f"--queue-url is required (no local stack file at {stack_file_path()}; "
                "run `make local` or set ORCHESTRATOR_STACK_FILE)"
            )
        queue_url = stack.master_queue_url
    session = make_session(args.profile)
    if args.region:
        check_queue_region(queue_url, args.region, "--region", stack)
        region = args.region
    else:
        region = (
            region_from_queue_url(queue_url)
            or (stack.region_of(queue_url) if stack else None)
            or default_region(session)
        )
    endpoint = endpoint_for(queue_url, args.endpoint_url or (stack.endpoint_url if stack else None))
    return SendTarget(queue_url, region, endpoint, session, stack)


def _stack_quietly() -> LocalStack | None:
    """The stack file when the queue came from the flags: a broken one is not this run's
    business then."""
    try:
        return load_stack()
    except StackFileError:
        return None


def resolve_table(args: argparse.Namespace, target: SendTarget) -> tuple[str, str]:
    """(table name, table region) for --wait. The table lives in the primary region, as the
    master queue does, unless $IDEMPOTENCY_TABLE_REGION says otherwise."""
    name = args.table or os.environ.get(TABLE_ENV) or (target.stack and target.stack.table_name)
    if not name:
        raise UsageError(f"--wait needs the request table: give --table NAME (or set ${TABLE_ENV})")
    region = os.environ.get(TABLE_REGION_ENV)
    return name, check_region(region, TABLE_REGION_ENV) if region else target.region


def _print_summary(output: Output, report: SendReport, waited: WaitReport | None) -> None:
    lines = [("queue", report.queue_url)]
    extra = f" ({len(report.malformed_sent)} malformed)" if report.malformed_sent else ""
    lines.append(("sent", f"{report.sent}{extra}"))
    unique = len(report.distinct_request_ids())
    if unique != len(report.sent_request_ids):
        lines.append(("distinct request ids", str(unique)))
    lines += [
        ("failed", str(report.failed)),
        ("elapsed", f"{report.elapsed:.2f} s"),
        ("rate", f"{report.rate:.1f} msg/s"),
    ]
    if waited is not None:
        lines.append(("waited", f"{waited.elapsed:.1f} s of {waited.timeout:g} s"))
        lines.append(("requests", waited.summary()))
    failures = [f"{f['request_id']}: {f['code']}: {f['message']}" for f in report.failures[:10]]
    if report.failed > 10:
        failures.append(f"... and {report.failed - 10} more failures")
    text = "\n".join(
        ["Summary"]
        + [f"  {name + ':':<9} {value}" for name, value in lines]
        + [f"  failure:  {line}" for line in failures]
    )
    output.print(text, _summary_table(lines, failures, report, waited) if output.rich_out else None)


def _summary_table(
    lines: list[tuple[str, str]],
    failures: list[str],
    report: SendReport,
    waited: WaitReport | None,
) -> RenderableType:
    from rich.table import Table

    table = Table(title="Summary", show_header=False, title_justify="left", box=None)
    table.add_column(style="bold")
    table.add_column()
    bad = report.failed > 0 or (waited is not None and not waited.all_succeeded)
    for name, value in lines:
        style = "red" if name in ("failed", "requests") and bad else None
        table.add_row(name, value, style=style)
    for line in failures:
        table.add_row("failure", line, style="red")
    return table


def _wait_for(
    output: Output, args: argparse.Namespace, table: RequestTable, ids: list[str]
) -> WaitReport:
    waiter = Waiter(table, ids, timeout=args.wait_timeout)
    with output.live(lambda: render_stages(waiter.report, waiter.elapsed())) as live:
        if not args.json:
            waiter.on_done = lambda record: live.print(result_line(record), result_text(record))
        if not output.rich_err:
            waiter.on_change = lambda report: output.note(f"waiting: {report.summary()}")
        return waiter.run()


def _exit_status(report: SendReport, waited: WaitReport | None) -> ExitCode:
    if report.aborted == INTERRUPTED or (waited is not None and waited.interrupted):
        return ExitCode.INTERRUPTED
    if report.aborted:
        return ExitCode.USAGE
    if report.failed or (waited is not None and not waited.all_succeeded):
        return ExitCode.FAILURES
    return ExitCode.OK


def _usage_error(p: argparse.ArgumentParser, exc: Exception) -> NoReturn:
    if isinstance(exc, StackFileError):
        p.exit(ExitCode.USAGE, f"error: local stack file: {exc}\n")
    p.error(str(exc))


def main(
    argv: Sequence[str] | None = None,
    client: SQSClient | None = None,
    prog: str | None = None,
    dynamodb: DynamoDBClient | None = None,
) -> int:
    """Run the producer. `client` (SQS) and `dynamodb` are for tests; normally they are made."""
    p = build_parser(prog) if prog else build_parser()
    args = p.parse_args(argv)
    _check_flags(p, args)
    output = Output(plain=args.plain)
    try:
        return _main(p, args, output, client, dynamodb)
    except KeyboardInterrupt:  # during start-up; a send or a wait in progress reports itself
        output.error(INTERRUPTED)
        return ExitCode.INTERRUPTED


def _main(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    output: Output,
    client: SQSClient | None,
    dynamodb: DynamoDBClient | None,
) -> int:
    plan = plan_messages(
        count=args.count,
        request_id=args.request_id,
        duplicate=args.duplicate,
        priority=args.priority,
        malformed_count=args.malformed,
    )
    _validate_requests(p, args, plan)
    try:
        target = resolve_target(args)
        table = resolve_table(args, target) if args.wait else ("", "")
    except (UsageError, StackFileError) as exc:
        _usage_error(p, exc)
    return _run(args, output, plan, target, client, table, dynamodb)


def _run(
    args: argparse.Namespace,
    output: Output,
    plan: list[Planned],
    target: SendTarget,
    client: SQSClient | None,
    table: tuple[str, str],
    dynamodb: DynamoDBClient | None,
) -> int:
    if client is None:
        client = sqs_client(target.session, target.region, target.endpoint_url)
    try:
        check_queue(client, target.queue_url)
    except QueueUnusable as exc:
        output.error(str(exc))
        return ExitCode.USAGE
    report = send_messages(
        client,
        target.queue_url,
        plan,
        model=args.model,
        callback_sns_topic=args.callback_sns_topic,
        batch_size=args.batch_size,
        interval=args.interval,
        rate=args.rate,
        progress=output.progress(len(plan), "sending", "msg", force=args.progress),
    )
    waited: WaitReport | None = None
    wait_error: str | None = None
    if args.wait and not report.aborted:
        table_name, table_region = table
        if dynamodb is None:
            dynamodb = dynamodb_client(target.session, table_region, target.endpoint_url)
        try:
            waited = _wait_for(
                output, args, RequestTable(dynamodb, table_name), report.distinct_request_ids()
            )
        except RecordReadError as exc:
            wait_error = str(exc)
    if args.json:
        document = report.as_dict()
        if waited is not None:
            document["wait"] = waited.as_dict()
        print(json.dumps(document, indent=2))
    else:
        _print_summary(output, report, waited)
    if report.aborted:
        output.error(report.aborted)
    if wait_error:
        output.error(wait_error)
        return ExitCode.USAGE
    if waited is not None and waited.timed_out:
        output.error(f"timed out after {args.wait_timeout:g} s: {waited.summary()}")
    if waited is not None and waited.interrupted:
        output.error(INTERRUPTED)
    return _exit_status(report, waited)


COMMAND = Command(
    summary="send inference requests to the master queue (the producer); --wait for results",
    main=main,
)


def run_as_script(prog: str) -> int:
    """Entry point of the published script names (test-tools/*.py)."""
    try:
        return main(prog=prog)
    except KeyboardInterrupt:
        print(f"error: {INTERRUPTED}", file=sys.stderr)
        return ExitCode.INTERRUPTED
