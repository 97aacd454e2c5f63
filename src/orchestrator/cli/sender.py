"""Sending a plan of messages to the master queue, paced, and the report of what got in."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from orchestrator.core.errors import error_code, one_line
from orchestrator.core.sqs import OutgoingMessage, chunks, send_chunk

from .output import NoProgress, ProgressDisplay
from .preflight import QueueUnusable, check_queue
from .target import describe_endpoint, is_unreachable
from .traffic import DEFAULT_MODEL, Planned, body_of

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

INTERRUPTED = "interrupted"


@dataclass
class SendReport:
    queue_url: str
    sent_request_ids: list[str] = field(default_factory=list)
    malformed_sent: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    elapsed: float = 0.0
    aborted: str | None = None
    """One-line reason when the run stopped early (`INTERRUPTED` for Ctrl-C)."""

    @property
    def sent(self) -> int:
        return len(self.sent_request_ids) + len(self.malformed_sent)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def distinct_request_ids(self) -> list[str]:
        """The valid requests sent, each once, in order (--duplicate repeats one id)."""
        return list(dict.fromkeys(self.sent_request_ids))

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

    def record(self, item: Planned) -> None:
        if item.valid:
            self.sent_request_ids.append(item.request_id)
        else:
            self.malformed_sent.append({"kind": item.kind, "request_id": item.request_id})

    def fail(self, item: Planned, code: str, message: str) -> None:
        self.failures.append(
            {"request_id": item.request_id, "kind": item.kind, "code": code, "message": message}
        )


class _Unreachable(Exception):
    """SQS stopped answering mid-run: the run ends (carries the one-line reason)."""


def _send_one(
    client: SQSClient, queue_url: str, item: Planned, body: str, report: SendReport
) -> None:
    try:
        client.send_message(QueueUrl=queue_url, MessageBody=body)
    except ClientError as exc:  # refused: only this message failed
        report.fail(item, error_code(exc), one_line(exc))
    except BotoCoreError as exc:
        if is_unreachable(exc):
            raise _Unreachable(
                f"cannot reach SQS at {describe_endpoint(client)}: {one_line(exc)}"
            ) from exc
        report.fail(item, type(exc).__name__, one_line(exc))
    else:
        report.record(item)


def _send_batch(
    client: SQSClient, queue_url: str, items: list[Planned], bodies: list[str], report: SendReport
) -> None:
    by_key = {str(i): item for i, item in enumerate(items)}
    messages = [OutgoingMessage(key=str(i), body=body) for i, body in enumerate(bodies)]
    for chunk in chunks(messages):  # the batch limits (10 entries, 1 MiB) live in core.sqs
        failures = send_chunk(client, queue_url, chunk)
        if failures and all(f.transport for f in failures):
            # The whole call failed after botocore's retries: if SQS is gone, stop the run;
            # if it answers, the call was refused and only these messages failed.
            try:
                check_queue(client, queue_url)
            except QueueUnusable as exc:
                raise _Unreachable(str(exc)) from exc
        failed = {f.key: f for f in failures}
        for message in chunk:
            item = by_key[message.key]
            failure = failed.get(message.key)
            if failure is None:
                report.record(item)
            else:
                code, _, text = failure.reason.partition(": ")
                report.fail(item, code, text)


def send_messages(
    client: SQSClient,
    queue_url: str,
    plan: Sequence[Planned],
    *,
    model: str = DEFAULT_MODEL,
    callback_sns_topic: str | None = None,
    batch_size: int = 1,
    interval: float | None = None,
    rate: float | None = None,
    progress: ProgressDisplay | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SendReport:
    """Send `plan` in order. batch_size 1 uses SendMessage, more uses SendMessageBatch.

    Pacing: `interval` seconds between send calls (one message or one batch), or `rate`
    messages per second (a batch of B waits B/rate). Deadlines are absolute, so slow calls do
    not make the run drift. An unreachable endpoint or Ctrl-C stops the run
    (`report.aborted`); an API error fails only the messages of that call.
    """
    progress = progress or NoProgress()
    report = SendReport(queue_url=queue_url)
    start = time.monotonic()
    next_at = start
    done = 0
    try:
        for offset in range(0, len(plan), batch_size):
            items = list(plan[offset : offset + batch_size])
            delay = next_at - time.monotonic()
            if delay > 0:
                sleep(delay)
            bodies = [body_of(item, model, callback_sns_topic) for item in items]
            if batch_size == 1:
                _send_one(client, queue_url, items[0], bodies[0], report)
            else:
                _send_batch(client, queue_url, items, bodies, report)
            if rate:
                next_at += len(items) / rate
            elif interval:
                next_at += interval
            done += len(items)
            progress.update(done)
    except KeyboardInterrupt:
        report.aborted = INTERRUPTED
    except _Unreachable as exc:
        report.aborted = str(exc)
    finally:
        report.elapsed = time.monotonic() - start
        progress.close()
    return report
