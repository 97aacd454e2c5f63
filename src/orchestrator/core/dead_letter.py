"""Dead-lettering: a message that can never become a valid request goes to the DLQ with why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.core.sqs import (
    MAX_BATCH_BYTES,
    OutgoingMessage,
    SendFailure,
    chunks,
    send_chunk,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

MAX_ERROR_MESSAGE_CHARS = 1_024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    origin_message_id: str
    body: str
    error_code: str
    error_message: str
    request_id: str | None = None

    def to_message(self) -> OutgoingMessage:
        attributes = {
            "error_code": self.error_code,
            "error_message": self.error_message[:MAX_ERROR_MESSAGE_CHARS],
            "origin_message_id": self.origin_message_id,
        }
        if self.request_id:
            attributes["request_id"] = self.request_id
        message = OutgoingMessage(self.origin_message_id, self.body, attributes)
        if message.size <= MAX_BATCH_BYTES:
            return message
        return _truncated(message)

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> DeadLetter:
        """A message received from a dead-letter queue (``MessageAttributes`` requested).

        A message SQS itself moved there (its redrive policy, after ``maxReceiveCount``
        receives) carries no attributes: it keeps its message id, which is then its
        `origin_message_id`, and its `error_code` and `error_message` are empty.
        """
        raw = message.get("MessageAttributes") or {}

        def text(name: str) -> str:
            value = (raw.get(name) or {}).get("StringValue")
            return value if isinstance(value, str) else ""

        return cls(
            origin_message_id=text("origin_message_id") or str(message.get("MessageId") or ""),
            body=str(message.get("Body") or ""),
            error_code=text("error_code"),
            error_message=text("error_message"),
            request_id=text("request_id") or None,
        )


def _truncated(message: OutgoingMessage) -> OutgoingMessage:
    """Cut the body so body and attributes fit one SQS message; say so in the attributes."""
    body_bytes = message.body.encode("utf-8", errors="replace")
    attributes = {
        **message.attributes,
        "body_truncated": "true",
        "body_bytes": str(len(body_bytes)),
    }
    room = MAX_BATCH_BYTES - OutgoingMessage(message.key, "", attributes).size
    body = body_bytes[: max(0, room)].decode("utf-8", errors="ignore")
    return OutgoingMessage(message.key, body, attributes)


class DeadLetterQueue:
    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self.queue_url = queue_url
        self._client = client

    def send(self, letters: Sequence[DeadLetter]) -> list[SendFailure]:
        """Send every letter; return those that did not reach the queue."""
        failures: list[SendFailure] = []
        for chunk in chunks([letter.to_message() for letter in letters]):
            failures.extend(send_chunk(self._client, self.queue_url, chunk))
        return failures
