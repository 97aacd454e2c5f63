"""`orchestrator status REQUEST_ID`: print a request's record from the request table.

The record (`orchestrator.core.record.RequestRecord`) says where the request is: FORWARDED to
a region queue, RUNNING on a worker, or done — SUCCEEDED with its result (inline, or where it
is), FAILED or EXPIRED with the error — and when each step happened.

Exit status: 0 found, 1 no such request, 2 usage error or the table cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from orchestrator.core.command import Command, ExitCode
from orchestrator.core.record import RequestRecord, RequestStatus
from orchestrator.core.stackfile import LocalStack, StackFileError, load_stack, stack_file_path
from orchestrator.core.timefmt import iso_utc

from . import flags
from .output import Output
from .records import RecordReadError, RequestTable
from .target import UsageError, check_region, default_region, dynamodb_client, make_session

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from rich.console import RenderableType

TABLE_ENV = "IDEMPOTENCY_TABLE_NAME"
TABLE_REGION_ENV = "IDEMPOTENCY_TABLE_REGION"
# Fields holding epoch seconds: shown with their time as well.
EPOCH_FIELDS = frozenset({"lease_expires_at", "expires_at", "deadline_at", "run_lease_expires_at"})
STATUS_STYLE = {
    RequestStatus.FORWARDED: "cyan",
    RequestStatus.RUNNING: "yellow",
    RequestStatus.SUCCEEDED: "green",
    RequestStatus.FAILED: "red",
    RequestStatus.EXPIRED: "red",
}

EXAMPLES = f"""\
examples:
  # a request sent to the local stack (`make local`): the table comes from the stack file
  {{prog}} req-0b8c1f0e-4b0e-4d6c-9a51-2f7e0c7f7a11

  # on AWS: the table is in the primary region
  {{prog}} req-0b8c... --table inference-idempotency-dev --region us-east-1 --profile default

The table is --table, else ${TABLE_ENV}, else the local stack file's; its region is --region,
else ${TABLE_REGION_ENV}, else the stack file's primary region, else the profile's.

exit status: 0 found, 1 no such request, 2 usage error or the table cannot be read."""


def build_parser(prog: str = "orchestrator status") -> argparse.ArgumentParser:
    p = flags.Parser(
        prog=prog,
        description="Print a request's record: its status, region, timings, result or error.",
        epilog=EXAMPLES.format(prog=prog),
    )
    p.add_argument("request_id", metavar="REQUEST_ID", help="the request_id the client sent")
    p.add_argument("--table", help=f"request table (default: ${TABLE_ENV}, else the stack file)")
    p.add_argument("--region", type=flags.region, help="the table's region")
    p.add_argument("--profile", help="AWS named profile (boto3 Session)")
    p.add_argument(
        "--endpoint-url",
        type=flags.http_url,
        help="DynamoDB endpoint, e.g. http://127.0.0.1:4566 (moto, LocalStack)",
    )
    flags.add_output_flags(p, json_help="print the record as JSON")
    return p


def _stack() -> LocalStack | None:
    try:
        return load_stack()
    except StackFileError as exc:
        raise UsageError(f"local stack file: {exc}") from exc


def _stack_quietly() -> LocalStack | None:
    try:
        return load_stack()
    except StackFileError:
        return None


def resolve_table(args: argparse.Namespace) -> tuple[str, str, str | None, str | None]:
    """(table, region, endpoint or None, profile) from the flags, environment or stack file."""
    name = args.table or os.environ.get(TABLE_ENV)
    # With a table named, the stack file only lends its endpoint to its own table, and a
    # broken one is none of this command's business.
    stack = _stack() if not name else (None if args.endpoint_url else _stack_quietly())
    from_stack = stack is not None and (not name or name == stack.table_name)
    if not name:
        if stack is None or not stack.table_name:
            raise UsageError(
                f"give the request table with --table NAME (or set ${TABLE_ENV}); "
                f"no local stack file with a table_name at {stack_file_path()}"
            )
        name = stack.table_name
    region = args.region or os.environ.get(TABLE_REGION_ENV)
    if region and not args.region:
        check_region(region, TABLE_REGION_ENV)
    if not region and from_stack and stack is not None:
        region = stack.primary_region
    endpoint = args.endpoint_url or (stack.endpoint_url if from_stack and stack else None)
    return name, region or "", endpoint, args.profile


def _field_value(name: str, value: object) -> str:
    if name in EPOCH_FIELDS and isinstance(value, int) and value > 0:
        return f"{value} ({iso_utc(value)})"
    return str(value)


def render_plain(record: RequestRecord) -> str:
    fields = record.as_dict()
    width = max(len(name) for name in fields)
    return "\n".join(f"{name:<{width}}  {_field_value(name, v)}" for name, v in fields.items())


def render_rich(record: RequestRecord) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Request {record.request_id}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in record.as_dict().items():
        if name == "status":
            table.add_row(name, Text(record.status.value, style=STATUS_STYLE[record.status]))
        else:
            table.add_row(name, _field_value(name, value))
    return table


def main(
    argv: Sequence[str] | None = None,
    dynamodb: DynamoDBClient | None = None,
    prog: str | None = None,
) -> int:
    """Print one request's record. `dynamodb` (a client of the table's region) is for tests."""
    p = build_parser(prog) if prog else build_parser()
    args = p.parse_args(argv)
    output = Output(plain=args.plain)
    try:
        return _main(p, args, output, dynamodb)
    except KeyboardInterrupt:
        output.error("interrupted")
        return ExitCode.INTERRUPTED


def _main(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    output: Output,
    dynamodb: DynamoDBClient | None,
) -> int:
    try:
        table_name, region, endpoint, profile = resolve_table(args)
        if dynamodb is None:
            session = make_session(profile)
            dynamodb = dynamodb_client(session, region or default_region(session), endpoint)
    except UsageError as exc:
        p.error(str(exc))
    try:
        record = RequestTable(dynamodb, table_name).get(args.request_id)
    except RecordReadError as exc:
        output.error(str(exc))
        return ExitCode.USAGE
    if record is None:
        where = f"{table_name} ({dynamodb.meta.region_name})"
        output.error(f"no request {args.request_id!r} in table {where}")
        return ExitCode.FAILURES
    if args.json:
        print(json.dumps(record.as_dict(), indent=2), file=output.stdout)
    else:
        output.print(render_plain(record), render_rich(record) if output.rich_out else None)
    return ExitCode.OK


COMMAND = Command(summary="print a request's status, result or error (its record)", main=main)
