"""SendMessageBatch done right: at most 10 entries and 1 MiB per call, ids unique per call.

Used by the forwarder (region queues) and the dead-letter sender, so the limits live once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to send. `key` identifies it to the caller; it never goes on the wire."""

    key: str
    body: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Bytes SQS counts against its limit: body plus attribute names, types and values."""
        attribute_bytes = sum(
            len(name.encode()) + len(b"String") + len(value.encode())
            for name, value in self.attributes.items()
        )
        return len(self.body.encode("utf-8")) + attribute_bytes


@dataclass(frozen=True, slots=True)
class SendFailure:
    key: str
    reason: str
    transport: bool
    """True when the whole call failed (endpoint down, throttled, timed out)."""
    sender_fault: bool = False


def chunks(messages: Sequence[OutgoingMessage]) -> Iterator[list[OutgoingMessage]]:
    """Greedy chunks of at most 10 messages and 1 MiB in total, in order."""
    current: list[OutgoingMessage] = []
    current_bytes = 0
    for message in messages:
        size = message.size
        if current and (
            len(current) == MAX_BATCH_ENTRIES or current_bytes + size > MAX_BATCH_BYTES
        ):
            yield current
            current, current_bytes = [], 0
        current.append(message)
        current_bytes += size
    if current:
        yield current


def send_chunk(client: Any, queue_url: str, chunk: Sequence[OutgoingMessage]) -> list[SendFailure]:
    """One SendMessageBatch call; returns the messages that did not get in (none: all did)."""
    entries = [
        {
            # Entry ids are positions: unique within the call whatever the request ids are.
            "Id": str(index),
            "MessageBody": message.body,
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": value}
                for name, value in message.attributes.items()
            },
        }
        for index, message in enumerate(chunk)
    ]
    try:
        response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
    except Exception as exc:  # transport, throttling, access: the whole call failed
        reason = f"{type(exc).__name__}: {exc}"
        return [SendFailure(m.key, reason, transport=True) for m in chunk]
    failures = []
    for failed in response.get("Failed", []):
        message = chunk[int(failed["Id"])]
        reason = f"{failed.get('Code', 'Failed')}: {failed.get('Message', '')}".strip()
        failures.append(
            SendFailure(
                message.key, reason, transport=False, sender_fault=bool(failed.get("SenderFault"))
            )
        )
    return failures
