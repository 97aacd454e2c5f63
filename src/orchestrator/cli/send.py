"""Send test inference requests to the master queue.

    python3 producer.py --queue-url <MASTER_QUEUE_URL> --count 30 --interval 0.2 --profile default

With neither --queue-url nor --endpoint-url, the local stack file (`.local-stack.json` at the
repository root, or $ORCHESTRATOR_STACK_FILE) gives the queue and endpoint. See README.md.

Exit status: 0 every message sent, 1 some sends failed, 2 usage error or SQS unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from orchestrator.core import stackfile
from orchestrator.core.command import Command, ExitCode
from orchestrator.core.request import (
    MAX_METADATA_BYTES,
    InvalidRequestError,
    parse_request,
)

DEFAULT_MODEL = "gpt-l-7b"
DEFAULT_INPUT_BUCKET = "inference-inputs-dev"
DEFAULT_ACCOUNT = "123456789012"
PRIORITIES = ("high", "normal", "low")
MAX_BATCH = 10

# flag that supplies each request field, so a validation error names what the user typed
_FIELD_FLAGS = {
    "request_id": "--request-id",
    "model_name": "--model",
    "callback_sns_topic": "--callback-sns-topic",
}


# --- message construction ----------------------------------------------------------------------
def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def utc_now_iso() -> str:
    """ISO-8601 UTC with millisecond precision and a `Z`, e.g. 2025-12-02T10:23:00.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_callback_topic(region: str) -> str:
    return f"arn:aws:sns:{region}:{DEFAULT_ACCOUNT}:inference-results-dev"


def build_request(
    request_id: str,
    *,
    model: str = DEFAULT_MODEL,
    priority: str = "normal",
    callback_sns_topic: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """One request in the published format.

    Everything but `timestamp` is derived from the arguments only, so two messages with the same
    request id (--duplicate) carry the same payload and the distributor sees a retry, not a
    payload conflict (the timestamp is excluded from the payload hash).
    """
    user = zlib.crc32(request_id.encode()) % 1000
    return {
        "request_id": request_id,
        "model_name": model,
        "input_data_url": f"s3://{DEFAULT_INPUT_BUCKET}/inputs/{request_id}.json",
        "callback_sns_topic": callback_sns_topic or default_callback_topic("us-east-1"),
        "priority": priority,
        "timestamp": timestamp or utc_now_iso(),
        "metadata": {
            "user_id": f"user{user:03d}",
            "session_id": f"session{user:03d}",
            "source": "test-tools/producer",
        },
    }


def encode(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def plan_request_ids(count: int, request_id: str | None, duplicate: bool) -> list[str]:
    """The request id of each valid message.

    --duplicate: every message gets the same id (--request-id or one generated id).
    --request-id without --duplicate and --count > 1: the id gets a 1-based zero-padded suffix
    (`job-7` -> `job-7-01`, `job-7-02`, ...), so each message is still a distinct request.
    """
    if duplicate:
        return [request_id or new_request_id()] * count
    if request_id is None:
        return [new_request_id() for _ in range(count)]
    if count == 1:
        return [request_id]
    width = len(str(count))
    return [f"{request_id}-{n:0{width}d}" for n in range(1, count + 1)]


def priority_for(index: int, priority: str) -> str:
    """`mixed` cycles high, normal, low (by distinct request); otherwise the fixed priority."""
    return PRIORITIES[index % len(PRIORITIES)] if priority == "mixed" else priority


# --- malformed messages (--malformed) ----------------------------------------------------------
def _valid_base(request_id: str) -> dict[str, Any]:
    return build_request(request_id)


def _without(key: str) -> Callable[[str], str]:
    def make(request_id: str) -> str:
        doc = _valid_base(request_id)
        del doc[key]
        return encode(doc)

    return make


def _with(key: str, value: Any) -> Callable[[str], str]:
    def make(request_id: str) -> str:
        doc = _valid_base(request_id)
        doc[key] = value
        return encode(doc)

    return make


def _invalid_json(request_id: str) -> str:
    return encode(_valid_base(request_id))[:-20]  # cut off: unterminated object


def _not_an_object(request_id: str) -> str:
    return json.dumps([request_id, "not", "an", "object"])


def _duplicate_key(request_id: str) -> str:
    body = encode(_valid_base(request_id))
    return body[:-1] + f',"request_id":"{request_id}-again"}}'


def _metadata_too_large(request_id: str) -> str:
    doc = _valid_base(request_id)
    doc["metadata"] = {"padding": "x" * (MAX_METADATA_BYTES + 1)}
    return encode(doc)


# kind -> body factory; every body fails `parse_request` (tests check it)
MALFORMED_KINDS: dict[str, Callable[[str], str]] = {
    "invalid_json": _invalid_json,
    "not_an_object": _not_an_object,
    "missing_request_id": _without("request_id"),
    "missing_model_name": _without("model_name"),
    "bad_priority": _with("priority", "urgent"),
    "bad_url_scheme": _with("input_data_url", "ftp://inference-inputs-dev/inputs/x.json"),
    "bad_request_id": _with("request_id", "req id with spaces!"),
    "bad_timestamp": _with("timestamp", "2025-12-02T10:23:00"),  # no time zone
    "bad_callback_arn": _with("callback_sns_topic", "not-an-arn"),
    "metadata_too_large": _metadata_too_large,
    "duplicate_key": _duplicate_key,
}


def malformed_body(index: int) -> tuple[str, str, str]:
    """(kind, request id it mentions, body) of the index-th malformed message (kinds cycle)."""
    kinds = list(MALFORMED_KINDS)
    kind = kinds[index % len(kinds)]
    request_id = f"malformed-{kind.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    return kind, request_id, MALFORMED_KINDS[kind](request_id)


# --- the send plan -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    """One message to send. `kind` is "valid" or a key of MALFORMED_KINDS."""

    kind: str
    request_id: str
    priority: str = "normal"
    body: str | None = None  # fixed body (malformed); valid bodies are built at send time


def interleave(count: int, malformed: int) -> Iterator[bool]:
    """True where a malformed message goes: `malformed` slots spread evenly among the total."""
    total = count + malformed
    for i in range(total):
        yield (i + 1) * malformed // total > i * malformed // total


def plan_messages(
    *,
    count: int,
    request_id: str | None = None,
    duplicate: bool = False,
    priority: str = "normal",
    malformed: int = 0,
) -> list[Planned]:
    ids = plan_request_ids(count, request_id, duplicate)
    plan: list[Planned] = []
    valid_index = malformed_index = 0
    for is_malformed in interleave(count, malformed):
        if is_malformed:
            kind, rid, body = malformed_body(malformed_index)
            plan.append(Planned(kind=kind, request_id=rid, body=body))
            malformed_index += 1
        else:
            rid = ids[valid_index]
            distinct = 0 if duplicate else valid_index
            plan.append(Planned("valid", rid, priority_for(distinct, priority)))
            valid_index += 1
    return plan


# --- sending -----------------------------------------------------------------------------------
@dataclass
class SendReport:
    queue_url: str
    sent_request_ids: list[str] = field(default_factory=list)
    malformed_sent: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    elapsed: float = 0.0
    aborted: str | None = None  # one-line reason when the run stopped early

    @property
    def sent(self) -> int:
        return len(self.sent_request_ids) + len(self.malformed_sent)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue_url": self.queue_url,
            "sent": self.sent,
            "valid_sent": len(self.sent_request_ids),
            "malformed_sent": len(self.malformed_sent),
            "failed": self.failed,
            "elapsed_seconds": round(self.elapsed, 3),
            "rate_per_second": round(self.rate, 2),
            "request_ids": self.sent_request_ids,
            "malformed": self.malformed_sent,
            "failures": self.failures,
            "aborted": self.aborted,
        }


class Progress:
    """A one-line progress bar on a stream (stderr); no dependency."""

    def __init__(self, total: int, stream: TextIO, enabled: bool, width: int = 30) -> None:
        self.total, self.stream, self.enabled, self.width = total, stream, enabled, width
        self.start = time.monotonic()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        filled = self.width * done // self.total if self.total else self.width
        pct = 100 * done / self.total if self.total else 100.0
        elapsed = time.monotonic() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {pct:5.1f}% {rate:7.1f} msg/s")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _body(item: Planned, model: str, callback_sns_topic: str | None) -> str:
    if item.body is not None:
        return item.body
    return encode(
        build_request(
            item.request_id,
            model=model,
            priority=item.priority,
            callback_sns_topic=callback_sns_topic,
        )
    )


def _record(report: SendReport, item: Planned) -> None:
    if item.kind == "valid":
        report.sent_request_ids.append(item.request_id)
    else:
        report.malformed_sent.append({"kind": item.kind, "request_id": item.request_id})


def _fail(report: SendReport, item: Planned, code: str, message: str) -> None:
    report.failures.append(
        {"request_id": item.request_id, "kind": item.kind, "code": code, "message": message}
    )


def _send_chunk(
    client: Any, queue_url: str, chunk: list[Planned], bodies: list[str], report: SendReport
) -> None:
    from botocore.exceptions import ClientError

    try:
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
        response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        for item in chunk:
            _fail(report, item, error.get("Code", "ClientError"), stackfile.one_line(exc))
        return
    failed = {entry["Id"]: entry for entry in response.get("Failed", [])}
    for i, item in enumerate(chunk):
        entry = failed.get(str(i))
        if entry is None:
            _record(report, item)
        else:
            _fail(report, item, entry.get("Code", "Failed"), entry.get("Message", ""))


def _send_one(client: Any, queue_url: str, item: Planned, body: str, report: SendReport) -> None:
    from botocore.exceptions import ClientError

    try:
        client.send_message(QueueUrl=queue_url, MessageBody=body)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "ClientError")
        _fail(report, item, code, stackfile.one_line(exc))
    else:
        _record(report, item)


def send_messages(
    client: Any,
    queue_url: str,
    plan: Sequence[Planned],
    *,
    model: str = DEFAULT_MODEL,
    callback_sns_topic: str | None = None,
    batch_size: int = 1,
    interval: float | None = None,
    rate: float | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SendReport:
    """Send `plan` in order. batch_size 1 uses SendMessage, more uses SendMessageBatch.

    Pacing: `interval` seconds between send calls (one message or one batch), or `rate`
    messages per second (a batch of B waits B/rate). Deadlines are absolute, so slow calls do
    not make the run drift. An unreachable endpoint stops the run (`report.aborted`); an API
    error fails only the messages of that call.
    """
    report = SendReport(queue_url=queue_url)
    start = time.monotonic()
    next_at = start
    done = 0
    try:
        for offset in range(0, len(plan), batch_size):
            chunk = list(plan[offset : offset + batch_size])
            delay = next_at - time.monotonic()
            if delay > 0:
                sleep(delay)
            bodies = [_body(item, model, callback_sns_topic) for item in chunk]
            if batch_size == 1:
                _send_one(client, queue_url, chunk[0], bodies[0], report)
            else:
                _send_chunk(client, queue_url, chunk, bodies, report)
            if rate:
                next_at += len(chunk) / rate
            elif interval:
                next_at += interval
            done += len(chunk)
            if progress:
                progress.update(done)
    except KeyboardInterrupt:
        report.aborted = "interrupted"
    except Exception as exc:
        if not stackfile.is_unreachable(exc):
            raise
        report.aborted = (
            f"cannot reach SQS at {stackfile.describe_endpoint(client)}: {stackfile.one_line(exc)}"
        )
    finally:
        report.elapsed = time.monotonic() - start
        if progress:
            progress.close()
    return report


# --- command line ------------------------------------------------------------------------------
def build_parser(prog: str = "orchestrator send") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Send test inference requests to the master queue.",
        epilog=(
            "Without --queue-url and --endpoint-url the local stack file is used "
            "(.local-stack.json at the repository root, or $ORCHESTRATOR_STACK_FILE). "
            "Exit status: 0 all sent, 1 some sends failed, 2 usage error or SQS unreachable."
        ),
    )
    p.add_argument("--queue-url", help="master queue URL (default: from the local stack file)")
    p.add_argument("--count", type=int, default=10, help="valid requests to send (default 10)")
    p.add_argument("--interval", type=float, help="seconds between send calls (default 0)")
    p.add_argument("--rate", type=float, help="messages per second (excludes --interval)")
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
        help="also send N malformed messages (bad JSON, missing/invalid fields...), spread "
        "among the valid ones; they end up in the dead-letter queue",
    )
    p.add_argument("--profile", help="AWS named profile (boto3 Session)")
    p.add_argument("--region", help="region of the queue (default: from the URL or the stack)")
    p.add_argument("--endpoint-url", help="SQS endpoint (moto, LocalStack)")
    p.add_argument("--progress", action="store_true", help="progress bar even when not a TTY")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    return p


def _check_flags(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.count < 0 or (args.count == 0 and args.malformed <= 0):
        p.error("--count must be ≥ 1 (0 only together with --malformed)")
    if args.malformed < 0:
        p.error("--malformed must be ≥ 0")
    if args.interval is not None and args.rate is not None:
        p.error("--interval and --rate cannot be used together")
    if args.interval is not None and args.interval < 0:
        p.error("--interval must be ≥ 0")
    if args.rate is not None and not args.rate > 0:
        p.error("--rate must be > 0")
    if not 1 <= args.batch_size <= MAX_BATCH:
        p.error(f"--batch-size must be between 1 and {MAX_BATCH}")
    if args.duplicate and args.count < 1:
        p.error("--duplicate needs --count ≥ 1")


def _validate_requests(
    p: argparse.ArgumentParser, args: argparse.Namespace, plan: list[Planned]
) -> None:
    """Every valid message must pass the distributor's own parser; a failure names the flag."""
    seen: set[tuple[str, str]] = set()
    for item in plan:
        if item.kind != "valid" or (item.request_id, item.priority) in seen:
            continue
        seen.add((item.request_id, item.priority))
        try:
            parse_request(_body(item, args.model, args.callback_sns_topic))
        except InvalidRequestError as exc:
            flag = _FIELD_FLAGS.get(exc.field or "", "request")
            p.error(f"{flag}: {exc.message}")


def _print_summary(report: SendReport, out: TextIO) -> None:
    extra = f" ({len(report.malformed_sent)} malformed)" if report.malformed_sent else ""
    unique = len(set(report.sent_request_ids))
    print("Summary", file=out)
    print(f"  queue:    {report.queue_url}", file=out)
    print(f"  sent:     {report.sent}{extra}", file=out)
    if unique != len(report.sent_request_ids):
        print(f"  distinct request ids: {unique}", file=out)
    print(f"  failed:   {report.failed}", file=out)
    print(f"  elapsed:  {report.elapsed:.2f} s", file=out)
    print(f"  rate:     {report.rate:.1f} msg/s", file=out)
    for failure in report.failures[:10]:
        print(
            f"  failure:  {failure['request_id']}: {failure['code']}: {failure['message']}",
            file=out,
        )
    if report.failed > 10:
        print(f"  ... and {report.failed - 10} more failures", file=out)


def resolve_target(
    p: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[str, str | None, str | None]:
    """(queue_url, endpoint_url, region or None) from the flags or the local stack file."""
    if args.queue_url:
        return args.queue_url, args.endpoint_url, args.region
    if args.endpoint_url:
        p.error("--queue-url is required when --endpoint-url is given")
    try:
        stack = stackfile.load_stack()
    except stackfile.StackFileError as exc:
        p.exit(2, f"error: local stack file: {exc}\n")
    if stack is None:
        p.error(
            f"--queue-url is required (no local stack file at {stackfile.stack_file_path()}; "
            "run `make local` or set ORCHESTRATOR_STACK_FILE)"
        )
    return stack.master_queue_url, stack.endpoint_url, args.region or stack.primary_region


def make_client(
    p: argparse.ArgumentParser,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    queue_url: str,
) -> Any:
    from botocore.exceptions import BotoCoreError

    try:
        session = stackfile.make_session(profile)
    except BotoCoreError as exc:  # ProfileNotFound and friends
        p.error(f"--profile: {stackfile.one_line(exc)}")
    region = (
        region
        or stackfile.region_from_queue_url(queue_url)
        or session.region_name
        or stackfile.DEFAULT_REGION
    )
    return session.client(
        "sqs", region_name=region, **stackfile.client_kwargs(session, endpoint_url)
    )


def main(argv: Sequence[str] | None = None, client: Any = None, prog: str | None = None) -> int:
    """Run the producer. `client` (an SQS client) is for tests; normally one is made."""
    p = build_parser(prog) if prog else build_parser()
    args = p.parse_args(argv)
    _check_flags(p, args)
    plan = plan_messages(
        count=args.count,
        request_id=args.request_id,
        duplicate=args.duplicate,
        priority=args.priority,
        malformed=args.malformed,
    )
    _validate_requests(p, args, plan)
    queue_url, endpoint_url, region = resolve_target(p, args)
    if client is None:
        client = make_client(p, args.profile, region, endpoint_url, queue_url)
    problem = stackfile.preflight(client, queue_url)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    progress = Progress(len(plan), sys.stderr, enabled=args.progress or sys.stderr.isatty())
    report = send_messages(
        client,
        queue_url,
        plan,
        model=args.model,
        callback_sns_topic=args.callback_sns_topic,
        batch_size=args.batch_size,
        interval=args.interval,
        rate=args.rate,
        progress=progress,
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_summary(report, sys.stdout)
    if report.aborted:
        print(f"error: {report.aborted}", file=sys.stderr)
        return 130 if report.aborted == "interrupted" else 2
    return 1 if report.failed else 0


COMMAND = Command(summary="send inference requests to the master queue (the producer)", main=main)


def run_as_script(prog: str) -> int:
    """Entry point of the published script names (test-tools/*.py)."""
    try:
        return main(prog=prog)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
