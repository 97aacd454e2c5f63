"""Consume the region queues and print how the distributor spread the requests.

    python3 consumer.py --queue-us-east-1 <URL> --queue-us-west-2 <URL> --queue-us-west-1 <URL> \
        --max-messages 10 --profile default

Any region: `--queue REGION=URL` (repeatable). With no queue flags and no --endpoint-url the
local stack file (`.local-stack.json` at the repository root, or $ORCHESTRATOR_STACK_FILE) gives
the queues and endpoint. One SQS client per region; the regions are polled concurrently (one
thread each) with long polling, receive batches of 10 and batch deletes.

Stops after --max-messages messages, or when no queue has delivered anything for
--idle-timeout seconds, or on Ctrl-C; then prints the statistics (see README.md).

Exit status: 0 done, 2 usage error or a queue unreachable / failing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from orchestrator.core import stackfile
from orchestrator.core.command import Command, ExitCode

PUBLISHED_REGIONS = ("us-east-1", "us-west-2", "us-west-1")
PRIORITY_ORDER = ("high", "normal", "low")
RULE = "=" * 40
THIN_RULE = "-" * 40
MAX_WAIT_SECONDS = 20


# --- what was received -------------------------------------------------------------------------
def parse_time(value: Any) -> float | None:
    """Epoch seconds of an ISO-8601 date-time with a zone (`...Z` accepted); None otherwise."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


@dataclass(frozen=True)
class Received:
    region: str
    message_id: str
    received_at: float  # epoch seconds, taken when the receive call returned
    request_id: str | None = None
    priority: str | None = None
    attempt: str | None = None
    forwarded_at: float | None = None
    request_timestamp: float | None = None

    @classmethod
    def from_message(cls, region: str, message: dict[str, Any], received_at: float) -> Received:
        attrs = {
            name: value.get("StringValue")
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        try:
            body = json.loads(message.get("Body", ""))
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}

        def text(value: Any) -> str | None:
            return value if isinstance(value, str) else None

        return cls(
            region=region,
            message_id=message["MessageId"],
            received_at=received_at,
            request_id=attrs.get("request_id") or text(body.get("request_id")),
            priority=attrs.get("priority") or text(body.get("priority")),
            attempt=attrs.get("attempt"),
            forwarded_at=parse_time(attrs.get("forwarded_at")),
            request_timestamp=parse_time(body.get("timestamp")),
        )

    @property
    def forward_latency_ms(self) -> float | None:
        if self.forwarded_at is None:
            return None
        return (self.received_at - self.forwarded_at) * 1000

    @property
    def request_latency_ms(self) -> float | None:
        if self.request_timestamp is None:
            return None
        return (self.received_at - self.request_timestamp) * 1000


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "p50": round(percentile(values, 50), 1),
        "p90": round(percentile(values, 90), 1),
        "max": round(max(values), 1),
        "n": len(values),
    }


def _ordered_priorities(counter: Counter[str]) -> list[tuple[str, int]]:
    known = [(p, counter[p]) for p in PRIORITY_ORDER]
    others = sorted((p, n) for p, n in counter.items() if p not in PRIORITY_ORDER)
    return known + others


@dataclass
class Stats:
    regions: list[str]
    messages: list[Received] = field(default_factory=list)
    elapsed: float = 0.0
    stopped: str = ""
    error: str | None = None

    def by_region(self, region: str) -> list[Received]:
        return [m for m in self.messages if m.region == region]

    @property
    def total(self) -> int:
        return len(self.messages)

    def percent(self, region: str) -> float:
        return 100 * len(self.by_region(region)) / self.total if self.total else 0.0

    def priorities(self, messages: Sequence[Received] | None = None) -> Counter[str]:
        source = self.messages if messages is None else messages
        return Counter(m.priority or "unknown" for m in source)

    def duplicate_request_ids(self) -> dict[str, int]:
        counts = Counter(m.request_id for m in self.messages if m.request_id)
        return {rid: n for rid, n in sorted(counts.items()) if n > 1}

    def as_dict(self) -> dict[str, Any]:
        regions = {}
        for region in self.regions:
            msgs = self.by_region(region)
            regions[region] = {
                "count": len(msgs),
                "percent": round(self.percent(region), 1),
                "latency_ms": {
                    "since_forwarded": latency_summary(
                        [v for m in msgs if (v := m.forward_latency_ms) is not None]
                    ),
                    "since_request": latency_summary(
                        [v for m in msgs if (v := m.request_latency_ms) is not None]
                    ),
                },
                "priorities": dict(self.priorities(msgs)),
                "attempts": dict(Counter(m.attempt or "unknown" for m in msgs)),
            }
        return {
            "total": self.total,
            "regions": regions,
            "priorities": dict(_ordered_priorities(self.priorities())),
            "duplicate_request_ids": self.duplicate_request_ids(),
            "elapsed_seconds": round(self.elapsed, 3),
            "stopped": self.stopped,
            "error": self.error,
        }

    def render(self) -> str:
        """The published layout, then latency per region and counts per priority."""
        lines = [RULE, "Message Distribution Statistics", RULE]
        for region in self.regions:
            count = len(self.by_region(region))
            lines.append(f"{region}: {count} messages ({self.percent(region):.1f}%)")
        lines += [THIN_RULE, f"Total: {self.total} messages", ""]
        for title, attr in (
            ("Latency since forwarded_at (ms)", "forward_latency_ms"),
            ("Latency since request timestamp (ms)", "request_latency_ms"),
        ):
            lines.append(title)
            for region in self.regions:
                values = [v for m in self.by_region(region) if (v := getattr(m, attr)) is not None]
                summary = latency_summary(values)
                if summary is None:
                    lines.append(f"{region}: no data")
                else:
                    lines.append(
                        f"{region}: p50 {summary['p50']:.1f}  p90 {summary['p90']:.1f}  "
                        f"max {summary['max']:.1f}  (n={summary['n']})"
                    )
            lines.append("")
        lines.append("Messages by priority")
        lines += [f"{p}: {n}" for p, n in _ordered_priorities(self.priorities())]
        duplicates = self.duplicate_request_ids()
        lines.append(THIN_RULE)
        lines.append(f"Request ids received more than once: {len(duplicates)}")
        return "\n".join(lines)


# --- consuming ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueTarget:
    region: str
    queue_url: str
    client: Any


class Consumer:
    """Poll several region queues concurrently until a stop condition.

    `max_messages`: stop once this many distinct messages are counted. Messages a poll returns
    beyond that are made visible again at once (ChangeMessageVisibilityBatch 0), not deleted.
    `idle_timeout`: stop when no queue has delivered a message for this many seconds.
    `delete`: delete what was counted (default); with False messages stay on the queues (they
    reappear after the visibility timeout; a message id is counted once per run).
    """

    def __init__(
        self,
        targets: Sequence[QueueTarget],
        *,
        max_messages: int | None = None,
        wait_seconds: int = 5,
        idle_timeout: float = 10.0,
        delete: bool = True,
        clock: Callable[[], float] = time.time,
        on_message: Callable[[Received], None] | None = None,
    ) -> None:
        self.targets = list(targets)
        self.max_messages = max_messages
        self.wait_seconds = wait_seconds
        self.idle_timeout = idle_timeout
        self.delete = delete
        self.clock = clock
        self.on_message = on_message
        self.stats = Stats(regions=[t.region for t in self.targets])
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._last_activity = time.monotonic()

    def preflight(self) -> str | None:
        """None when every queue answers, else a one-line reason naming the region."""
        for target in self.targets:
            problem = stackfile.preflight(target.client, target.queue_url, target.region)
            if problem is not None:
                return problem
        return None

    @staticmethod
    def _unreachable(target: QueueTarget, exc: BaseException) -> str:
        endpoint = stackfile.describe_endpoint(target.client)
        return f"cannot reach SQS at {endpoint} ({target.region}): {stackfile.one_line(exc)}"

    def _remaining(self) -> int:
        if self.max_messages is None:
            return 10
        return max(0, self.max_messages - len(self.stats.messages))

    def _claim(
        self, region: str, messages: list[dict[str, Any]], received_at: float
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Count what fits the budget; return (counted, excess). Re-deliveries are dropped
        from the count but still deleted (when deleting)."""
        counted: list[dict[str, Any]] = []
        excess: list[dict[str, Any]] = []
        with self._lock:
            for message in messages:
                key = (region, message["MessageId"])
                if key in self._seen:
                    counted.append(message)
                    continue
                if self.max_messages is not None and self._remaining() == 0:
                    excess.append(message)
                    continue
                self._seen.add(key)
                received = Received.from_message(region, message, received_at)
                self.stats.messages.append(received)
                counted.append(message)
                if self.on_message:
                    self.on_message(received)
            self._last_activity = time.monotonic()
            if self.max_messages is not None and self._remaining() == 0:
                self._finish("max-messages")
        return counted, excess

    def _finish(self, reason: str, error: str | None = None) -> None:
        if not self._stop.is_set():
            self.stats.stopped = reason
            self.stats.error = error
            self._stop.set()

    def _poll(self, target: QueueTarget) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client, url = target.client, target.queue_url
        try:
            while not self._stop.is_set():
                with self._lock:
                    batch = min(10, self._remaining())
                if batch == 0:
                    return
                response = client.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=batch,
                    WaitTimeSeconds=self.wait_seconds,
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=["All"],
                )
                received_at = self.clock()
                messages = response.get("Messages") or []
                if not messages:
                    if self.wait_seconds == 0:
                        self._stop.wait(0.05)  # short polling: do not spin
                    continue
                counted, excess = self._claim(target.region, messages, received_at)
                if counted and self.delete:
                    self._delete(client, url, counted)
                if excess:
                    client.change_message_visibility_batch(
                        QueueUrl=url,
                        Entries=[
                            {
                                "Id": str(i),
                                "ReceiptHandle": m["ReceiptHandle"],
                                "VisibilityTimeout": 0,
                            }
                            for i, m in enumerate(excess)
                        ],
                    )
        except (BotoCoreError, ClientError) as exc:
            if stackfile.is_unreachable(exc):
                reason = self._unreachable(target, exc)
            else:
                reason = f"{target.region}: {stackfile.one_line(exc)}"
            with self._lock:
                self._finish("error", reason)

    @staticmethod
    def _delete(client: Any, url: str, messages: list[dict[str, Any]]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        response = client.delete_message_batch(QueueUrl=url, Entries=entries)
        for failure in response.get("Failed", []):
            print(
                f"warning: delete failed for {failure.get('Id')}: {failure.get('Message')}",
                file=sys.stderr,
            )

    def run(self) -> Stats:
        start = time.monotonic()
        self._last_activity = start
        threads = [
            threading.Thread(target=self._poll, args=(t,), name=f"poll-{t.region}", daemon=True)
            for t in self.targets
        ]
        for thread in threads:
            thread.start()
        try:
            while not self._stop.wait(0.05):
                with self._lock:
                    if time.monotonic() - self._last_activity >= self.idle_timeout:
                        self._finish("idle")
                    elif not any(t.is_alive() for t in threads):
                        self._finish("done")
            for thread in threads:
                thread.join()
        except KeyboardInterrupt:
            with self._lock:
                self._finish("interrupted")
            # polls in flight end within --wait-seconds; a second Ctrl-C leaves at once
            for thread in threads:
                thread.join(self.wait_seconds + 5)
        self.stats.elapsed = time.monotonic() - start
        return self.stats


# --- command line ------------------------------------------------------------------------------
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
        queues: list[tuple[str, str]] = list(getattr(namespace, "queues", None) or [])
        if self.region:
            region, url = self.region, values
        else:
            region, sep, url = str(values).partition("=")
            if not sep or not url or not stackfile.is_region(region):
                parser.error(
                    f"--queue: expected REGION=URL (e.g. us-east-2=https://...), got {values!r}"
                )
        if any(r == region for r, _ in queues):
            parser.error(f"{option_string}: region {region} given more than once")
        queues.append((region, url))
        namespace.queues = queues


def build_parser(prog: str = "orchestrator consume") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Consume the region queues and print the distribution statistics.",
        epilog=(
            "Without queue flags and --endpoint-url the local stack file is used "
            "(.local-stack.json at the repository root, or $ORCHESTRATOR_STACK_FILE). "
            "Exit status: 0 done, 2 usage error or a queue unreachable."
        ),
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
        "--max-messages", type=int, metavar="N", help="stop after N messages (default: until idle)"
    )
    p.add_argument(
        "--wait-seconds",
        type=int,
        default=5,
        help=f"long-poll wait per receive, 0-{MAX_WAIT_SECONDS} (default 5)",
    )
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=10.0,
        help="stop when no queue delivered anything for this long (default 10 s)",
    )
    p.add_argument(
        "--no-delete",
        action="store_true",
        help="leave messages on the queues (they reappear after the visibility "
        "timeout; each is counted once per run)",
    )
    p.add_argument("--profile", help="AWS named profile (boto3 Session)")
    p.add_argument("--endpoint-url", help="SQS endpoint for every region (moto, LocalStack)")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.add_argument(
        "--verbose", "-v", action="store_true", help="print one line per received message on stderr"
    )
    return p


def _check_flags(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.max_messages is not None and args.max_messages < 1:
        p.error("--max-messages must be ≥ 1")
    if not 0 <= args.wait_seconds <= MAX_WAIT_SECONDS:
        p.error(f"--wait-seconds must be between 0 and {MAX_WAIT_SECONDS}")
    if not args.idle_timeout > 0:
        p.error("--idle-timeout must be > 0")


def resolve_queues(
    p: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[tuple[str, str]], str | None]:
    """([(region, url)], endpoint_url) from the flags or the local stack file."""
    if args.queues:
        return args.queues, args.endpoint_url
    if args.endpoint_url:
        p.error("--queue-REGION or --queue REGION=URL is required when --endpoint-url is given")
    try:
        stack = stackfile.load_stack()
    except stackfile.StackFileError as exc:
        p.exit(2, f"error: local stack file: {exc}\n")
    if stack is None or not stack.region_queues:
        where = stackfile.stack_file_path()
        p.error(
            "give the queues with --queue-us-east-1 URL ... or --queue REGION=URL "
            f"(no local stack file with region_queues at {where})"
        )
    return list(stack.region_queues.items()), stack.endpoint_url


def make_targets(
    p: argparse.ArgumentParser,
    queues: Sequence[tuple[str, str]],
    profile: str | None,
    endpoint_url: str | None,
) -> list[QueueTarget]:
    """One client per region: moto (and AWS) pick the queue's region from the client."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    try:
        session = stackfile.make_session(profile)
    except BotoCoreError as exc:
        p.error(f"--profile: {stackfile.one_line(exc)}")
    kwargs = stackfile.client_kwargs(session, endpoint_url)
    # a long poll must not hit the read timeout
    kwargs["config"] = kwargs["config"].merge(Config(read_timeout=MAX_WAIT_SECONDS + 20))
    return [
        QueueTarget(region, url, session.client("sqs", region_name=region, **kwargs))
        for region, url in queues
    ]


def _log_message(stream: TextIO) -> Callable[[Received], None]:
    def log(m: Received) -> None:
        latency = m.forward_latency_ms
        extra = f" {latency:.0f} ms since forwarded" if latency is not None else ""
        print(f"{m.region}: {m.request_id} priority={m.priority}{extra}", file=stream)

    return log


def main(
    argv: Sequence[str] | None = None,
    targets: Sequence[QueueTarget] | None = None,
    prog: str | None = None,
) -> int:
    """Run the consumer. `targets` (with injected clients) is for tests."""
    p = build_parser(prog) if prog else build_parser()
    args = p.parse_args(argv)
    _check_flags(p, args)
    if targets is None:
        queues, endpoint_url = resolve_queues(p, args)
        targets = make_targets(p, queues, args.profile, endpoint_url)
    consumer = Consumer(
        targets,
        max_messages=args.max_messages,
        wait_seconds=args.wait_seconds,
        idle_timeout=args.idle_timeout,
        delete=not args.no_delete,
        on_message=_log_message(sys.stderr) if args.verbose else None,
    )
    problem = consumer.preflight()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    stats = consumer.run()
    if args.json:
        print(json.dumps(stats.as_dict(), indent=2))
    else:
        print(stats.render())
    if stats.error:
        print(f"error: {stats.error}", file=sys.stderr)
        return 2
    return 0


COMMAND = Command(summary="consume the region queues and print how requests were spread", main=main)


def run_as_script(prog: str) -> int:
    """Entry point of the published script names (test-tools/*.py)."""
    try:
        return main(prog=prog)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
