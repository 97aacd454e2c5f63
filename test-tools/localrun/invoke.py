"""`make invoke EVENT=events/x.json`: run the real distributor once on an SQS event file, the
way `sam local invoke -e` does, against the local stack.

Uses the stack `.local-stack.json` describes when its endpoint answers (`make local` in another
terminal), otherwise starts a throwaway one. Prints the handler's response and where each
record went: the region queue it was forwarded to, the dead-letter queue with its error_code,
dropped as a duplicate, or failed (returned to the master queue). The outcomes come from the
distributor's own batch report; on a throwaway stack they are also checked against the queues.
The function's own output (logs, metrics) goes to stderr.

    python -m localrun.invoke -e events/sqs-three-requests.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from localrun.distributor import build_handler
from localrun.lambda_runtime import LambdaContext
from localrun.resources import LocalStack, receive_all
from localrun.server import FAKE_CREDENTIALS, LocalSession
from localrun.stack import running_stack
from localrun.stackfile import live_stack_document, stack_file_path
from localrun.templates import load_stack_spec
from orchestrator.core.command import Command


@dataclass(frozen=True)
class Target:
    stack: LocalStack
    session: LocalSession
    throwaway: bool


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
    throwaway: bool
    endpoint_url: str


def load_event(path: Path) -> dict[str, Any]:
    event = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        raise ValueError(f"{path}: not an SQS event (no Records list)")
    return event


@contextlib.contextmanager
def target_stack(stack_file: Path, *, throwaway: bool = False) -> Iterator[Target]:
    """The running local stack, or a throwaway one for the duration of the block."""
    document = None if throwaway else live_stack_document(stack_file)
    if document is not None:
        spec = load_stack_spec(primary_region=document.get("primary_region") or "us-east-1")
        stack = LocalStack.from_stack_file_document(document, spec)
        yield Target(stack, LocalSession(stack.endpoint_url, stack.primary_region), False)
        return
    with running_stack(name_suffix=f"-invoke-{uuid.uuid4().hex[:8]}") as local:
        yield Target(local.stack, local.session, True)


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
    with contextlib.redirect_stdout(function_output):
        try:
            handler = build_handler(stack.distributor_environ(), target.session, reports.append)
            response = handler(event, context)
        except Exception:
            error = traceback.format_exc()
    duration_ms = (time.perf_counter() - started) * 1000
    outcomes = {mid: o for report in reports for mid, o in report.outcomes.items()}
    seen = _read_queues(target, event) if target.throwaway else {}
    return InvokeResult(
        response,
        error,
        duration_ms,
        context.aws_request_id,
        outcomes,
        seen,
        target.throwaway,
        stack.endpoint_url,
    )


def _read_queues(target: Target, event: Mapping[str, Any]) -> dict[str, str]:
    """Where each of the event's message ids sits now, by `origin_message_id`."""
    stack = target.stack
    wanted = {r.get("messageId") for r in event["Records"]}
    queues = {region: (region, url) for region, url in stack.region_queues.items()}
    queues["dead-letter queue"] = (stack.primary_region, stack.dead_letter_queue_url)
    seen: dict[str, str] = {}
    for name, (region, url) in queues.items():
        client = target.session.client("sqs", region_name=region)
        for message in receive_all(client, url, visibility_timeout=30):
            attributes = message.get("MessageAttributes") or {}
            origin = (attributes.get("origin_message_id") or {}).get("StringValue")
            if isinstance(origin, str) and origin in wanted:
                code = (attributes.get("error_code") or {}).get("StringValue")
                seen[origin] = f"{name} ({code})" if code else name
    return seen


def describe(outcome: Any) -> str:
    if outcome is None:
        return "no outcome reported"
    kind = outcome.disposition.value
    if kind == "forwarded":
        return f"{outcome.region} queue (attempt {outcome.attempt})"
    if kind == "dead_lettered":
        return f"dead-letter queue: {outcome.reason} - {outcome.detail or ''}".rstrip(" -")
    if kind == "duplicate":
        return "duplicate: already claimed, not forwarded"
    return f"FAILED, back to the master queue: {outcome.reason or ''} {outcome.detail or ''}"


def format_result(event: Mapping[str, Any], source: str, result: InvokeResult) -> str:
    where = "a throwaway local stack" if result.throwaway else "the running local stack"
    lines = [
        f"Invoked the distributor with {source} ({len(event['Records'])} records) "
        f"on {where} at {result.endpoint_url}",
        f"Duration {result.duration_ms:.1f} ms, request id {result.request_id}",
    ]
    if result.error:
        lines += ["", "The invocation failed (Lambda would retry the whole batch):", result.error]
        return "\n".join(lines)
    lines += ["", "Response:", json.dumps(result.response, indent=2), "", "Where each record went:"]
    for record in event["Records"]:
        message_id = record.get("messageId", "")
        outcome = result.outcomes.get(message_id)
        request_id = getattr(outcome, "request_id", None) or "-"
        line = f"  {message_id:<38} {request_id[:40]:<41} {describe(outcome)}"
        if (
            result.throwaway
            and outcome is not None
            and outcome.disposition.value
            in (
                "forwarded",
                "dead_lettered",
            )
        ):
            line += f"  [in queue: {result.seen.get(message_id, 'NOT FOUND')}]"
        lines.append(line)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="orchestrator invoke", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("-e", "--event", type=Path, required=True, help="SQS event JSON file")
    parser.add_argument("--throwaway", action="store_true", help="ignore a running local stack")
    args = parser.parse_args(argv)
    out = out or sys.stdout
    try:
        event = load_event(args.event)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with target_stack(stack_file_path(), throwaway=args.throwaway) as target:
        result = invoke(event, target, sys.stderr)
    print(format_result(event, str(args.event), result), file=out)
    return 1 if result.error else 0


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
