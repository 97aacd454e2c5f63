"""Dead-lettering: a message that can never become a valid request goes to the DLQ with why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.core.sqs import (
    MAX_BATCH_BYTES,
    OutgoingMessage,
    SendFailure,
    chunks,
    send_chunk,
)

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
    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self._client = client

    def send(self, letters: Sequence[DeadLetter]) -> list[SendFailure]:
        """Send every letter; return those that did not reach the queue."""
        failures: list[SendFailure] = []
        for chunk in chunks([letter.to_message() for letter in letters]):
            failures.extend(send_chunk(self._client, self.queue_url, chunk))
        return failures
