"""`orchestrator invoke -e events/x.json` (`make invoke EVENT=...`): run the real distributor
once on an SQS event file, the way `sam local invoke -e` does, against the local stack.

Uses the stack the stack file describes when its endpoint answers (`orchestrator local` in
another terminal), otherwise a throwaway one. Prints the handler's response and where each
record went: the region queue it was forwarded to, the dead-letter queue with its error_code,
dropped as a duplicate, or failed. A failed record is in the response's batchItemFailures:
behind a real SQS event source it would stay in the master queue and SQS would deliver it
again; the invoker invokes once and says so. The outcomes come from the distributor's own
batch report; on a throwaway stack they are also checked against the queues. The function's
own output (logs, metrics) goes to stderr.

Records keep the message ids of the file. To the distributor, the same messageId again is SQS
delivering the same message again, not a client's retry: within the claim lease of an earlier
invocation it is reported as failed (IN_PROGRESS), after it it is forwarded again.
``--new-message-ids`` gives every record a fresh id, as a client sending the same requests
again would get: those show up as duplicates.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from localrun.distributor import build_handler
from localrun.event_file import EventFileError, load_event
from localrun.invoke_report import format_result, record_key
from localrun.lambda_runtime import LambdaContext
from localrun.resources import StackResources
from localrun.server import FAKE_CREDENTIALS, LocalSession, endpoint_is_up
from localrun.stack import running_stack
from localrun.templates import load_stack_spec
from orchestrator.core.attributes import RoutingAttributes
from orchestrator.core.command import Command, ExitCode
from orchestrator.core.dead_letter import DeadLetter
from orchestrator.core.errors import AWS_ERRORS
from orchestrator.core.record import RequestRecord
from orchestrator.core.sqs import receive_all
from orchestrator.core.stackfile import StackFileError, load_stack, stack_file_path

EPILOG = """\
exit status: 0 every record settled (forwarded, duplicate or dead-lettered);
1 records were reported in batchItemFailures (SQS would deliver them again), or the
invocation itself failed (the whole batch would be retried); 2 the event file or the stack
file cannot be used.

example: orchestrator invoke -e events/sqs-three-requests.json
"""


@dataclass(frozen=True)
class Target:
    stack: StackResources
    session: LocalSession
    throwaway: bool
    note: str = ""
    """Why this target, when it is not the obvious one."""


@dataclass(frozen=True)
class InvokeResult:
    response: Any
    error: str | None
    duration_ms: float
    request_id: str
    outcomes: Mapping[str, Any]
    """Distributor outcomes by message id."""
    seen: Mapping[str, str]
    """Where each message id was found by reading the queues (throwaway stacks only)."""
    target: Target
    lease_seconds: float
    """The claim lease this invocation took: the context's remaining time plus a margin."""
    leases: Mapping[str, int] = field(default_factory=dict)
    """Claim lease expiry (epoch seconds) by request id, for records failed IN_PROGRESS."""

    @property
    def failed(self) -> bool:
        """The invocation failed, or some record is to be delivered again."""
        if self.error:
            return True
        return any(o.disposition.value == "failed" for o in self.outcomes.values())


def running_target(stack_file: Path) -> tuple[Target | None, str]:
    """The stack the stack file describes, if its endpoint answers; else None and why not
    (empty when there is no stack file). `StackFileError` or `ValueError` when the file exists
    but cannot be used: that is reported, never silently replaced by a throwaway stack."""
    live = load_stack(stack_file)
    if live is None:
        return None, ""
    if not endpoint_is_up(live.endpoint_url):
        return None, f"{stack_file} names {live.endpoint_url}, which does not answer"
    stack = StackResources.from_local_stack(
        live, load_stack_spec(primary_region=live.primary_region)
    )
    return Target(stack, LocalSession(stack.endpoint_url, stack.primary_region), False), ""


@contextlib.contextmanager
def target_stack(running: Target | None, note: str = "") -> Iterator[Target]:
    """`running`, or a throwaway stack for the duration of the block."""
    if running is not None:
        yield running
        return
    with running_stack(name_suffix=f"-invoke-{uuid.uuid4().hex[:8]}") as local:
        yield Target(local.stack, local.session, True, note)


def with_new_message_ids(event: Mapping[str, Any]) -> dict[str, Any]:
    """`event` with a fresh messageId on every record (a client's retry, not a redelivery)."""
    records = [{**record, "messageId": str(uuid.uuid4())} for record in event["Records"]]
    return {**event, "Records": records}


def invoke(event: dict[str, Any], target: Target, function_output: TextIO) -> InvokeResult:
    stack = target.stack
    function = stack.spec.function
    reports: list[Any] = []
    context = LambdaContext(
        function.name,
        timeout=function.timeout,
        memory_mb=function.memory_mb,
        region=stack.primary_region,
    )
    started = time.perf_counter()
    response: Any = None
    error: str | None = None
    lease_seconds = float(function.timeout)
    with contextlib.redirect_stdout(function_output):
        try:
            handler = build_handler(stack.distributor_environ(), target.session, reports.append)
            from orchestrator.distributor.handler import LEASE_MARGIN_SECONDS

            lease_seconds = function.timeout + LEASE_MARGIN_SECONDS
            response = handler(event, context)
        except Exception:  # the function's error, whatever it is: Lambda's boundary
            error = traceback.format_exc()
    duration_ms = (time.perf_counter() - started) * 1000
    outcomes = {mid: o for report in reports for mid, o in report.outcomes.items()}
    waiting = {
        o.request_id
        for o in outcomes.values()
        if o.disposition.value == "failed" and o.reason == "IN_PROGRESS" and o.request_id
    }
    return InvokeResult(
        response=response,
        error=error,
        duration_ms=duration_ms,
        request_id=context.aws_request_id,
        outcomes=outcomes,
        seen=_read_queues(target, event) if target.throwaway else {},
        target=target,
        lease_seconds=lease_seconds,
        leases=_leases(target, waiting),
    )


def _read_queues(target: Target, event: Mapping[str, Any]) -> dict[str, str]:
    """Where each of the event's records sits now, by the message id it was forwarded or
    dead-lettered under (its `origin_message_id`)."""
    stack = target.stack
    wanted = {record_key(record, index) for index, record in enumerate(event["Records"])}
    seen: dict[str, str] = {}
    for region, url in stack.region_queues.items():
        client = target.session.client("sqs", region_name=region)
        for message in receive_all(client, url, visibility_timeout=30):
            routing = RoutingAttributes.from_message(message)
            if routing is not None and routing.origin_message_id in wanted:
                seen[routing.origin_message_id] = region
    client = target.session.client("sqs", region_name=stack.primary_region)
    for message in receive_all(client, stack.dead_letter_queue_url, visibility_timeout=30):
        letter = DeadLetter.from_message(message)
        if letter.origin_message_id in wanted:
            seen[letter.origin_message_id] = f"dead-letter queue ({letter.error_code})"
    return seen


def _leases(target: Target, request_ids: set[str]) -> dict[str, int]:
    """When each request id's claim lease ends, from the ledger (what can be read of it)."""
    if not request_ids:
        return {}
    stack = target.stack
    client = target.session.client("dynamodb", region_name=stack.primary_region)
    leases: dict[str, int] = {}
    for request_id in sorted(request_ids):
        try:
            item = client.get_item(
                TableName=stack.table_name, Key={"request_id": {"S": request_id}}
            ).get("Item")
        except AWS_ERRORS:
            continue  # the note then gives the lease's length instead of its end
        if item:
            leases[request_id] = RequestRecord.from_item(item).lease_expires_at
    return leases


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="orchestrator invoke",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-e", "--event", type=Path, required=True, help="SQS event JSON file")
    parser.add_argument("--throwaway", action="store_true", help="ignore a running local stack")
    parser.add_argument(
        "--new-message-ids",
        action="store_true",
        help="give every record a fresh messageId, as a client's retry would have: a second "
        "invocation then shows the requests as duplicates",
    )
    args = parser.parse_args(argv)
    out = out or sys.stdout
    try:
        event = load_event(args.event)
    except EventFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if args.new_message_ids:
        event = with_new_message_ids(event)
    running, note = None, ""
    if not args.throwaway:
        try:
            running, note = running_target(stack_file_path())
        except (StackFileError, ValueError) as exc:
            print(f"error: {exc} (or pass --throwaway)", file=sys.stderr)
            return ExitCode.USAGE
    with target_stack(running, note) as target:
        result = invoke(event, target, sys.stderr)
    print(format_result(event, str(args.event), result), file=out)
    return ExitCode.FAILURES if result.failed else ExitCode.OK


def _main_with_local_credentials(argv: Sequence[str]) -> int:
    # Clients get fake credentials from LocalSession; this covers any other client as well.
    os.environ.update(FAKE_CREDENTIALS)
    return main(argv)


COMMAND = Command(
    summary="run the real distributor on an event file (like sam local invoke -e)",
    main=_main_with_local_credentials,
)


if __name__ == "__main__":
    sys.exit(_main_with_local_credentials(sys.argv[1:]))
