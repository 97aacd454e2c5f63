"""SQS helpers used by every component: batch sends within SQS's limits, depth reads, and
reading a queue empty.

SendMessageBatch done right: at most 10 entries and 1 MiB per call, entry ids unique per call
(positions, never request ids). Used by the forwarder (region queues), the dead-letter
sender, the worker and the rescue function, so the limits live once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.core.attributes import MessageAttribute
from orchestrator.core.errors import AWS_ERRORS

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to send. `key` identifies it to the caller; it never goes on the wire."""

    key: str
    body: str
    attributes: Mapping[str, str | MessageAttribute] = field(default_factory=dict)
    """A plain string is a String attribute."""

    def message_attributes(self) -> dict[str, MessageAttribute]:
        return {
            name: value if isinstance(value, MessageAttribute) else MessageAttribute.string(value)
            for name, value in self.attributes.items()
        }

    @property
    def size(self) -> int:
        """Bytes SQS counts against its limit: body plus attribute names, types and values."""
        attribute_bytes = sum(
            len(name.encode()) + attribute.size
            for name, attribute in self.message_attributes().items()
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


def send_chunk(
    client: SQSClient, queue_url: str, chunk: Sequence[OutgoingMessage]
) -> list[SendFailure]:
    """One SendMessageBatch call; returns the messages that did not get in (none: all did)."""
    entries: list[Any] = [
        {
            # Entry ids are positions: unique within the call whatever the request ids are.
            "Id": str(index),
            "MessageBody": message.body,
            "MessageAttributes": {
                name: attribute.to_sqs() for name, attribute in message.message_attributes().items()
            },
        }
        for index, message in enumerate(chunk)
    ]
    try:
        response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
    except AWS_ERRORS as exc:  # transport, throttling, access: the whole call failed
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


# -- reading -------------------------------------------------------------------------------------

DEPTH_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """A queue's approximate depth: waiting (visible) and held by consumers (in flight)."""

    visible: int
    in_flight: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight


def read_depth(client: SQSClient, queue_url: str) -> QueueDepth:
    """One GetQueueAttributes call."""
    attributes = client.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=DEPTH_ATTRIBUTES,  # type: ignore[arg-type]
    ).get("Attributes", {})
    return QueueDepth(
        int(attributes.get("ApproximateNumberOfMessages", 0)),
        int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


def receive_all(
    client: SQSClient, queue_url: str, visibility_timeout: int = 30
) -> list[MessageTypeDef]:
    """Every message now visible in the queue, with its attributes, hidden (not deleted) for
    `visibility_timeout` seconds. Short polls until one comes back empty."""
    messages: list[MessageTypeDef] = []
    while True:
        batch = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=MAX_BATCH_ENTRIES,
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility_timeout,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages")
        if not batch:
            return messages
        messages.extend(batch)
