"""The region queue as the worker uses it, and the messages it holds.

Every message the worker has received and not yet settled is in `HeldMessages`, whatever it
is doing (waiting for the model, running, being settled). That registry is what the heartbeat
extends and what a shutdown hands back, so nothing received can be forgotten invisible.

Whoever settles or hands back a message **releases** it first (`HeldMessages.release`) and
only then changes its visibility or deletes it: the release waits for a heartbeat that is
already extending it, so a heartbeat's ``ChangeMessageVisibility(visibility timeout)`` can
never land after a retry's backoff or a hand-back's 0 and override it.

Visibility changes and deletes go in batches of 10 (``ChangeMessageVisibilityBatch``,
``DeleteMessageBatch``), with entry ids that are positions, never request ids.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import AWS_ERRORS, error_code, one_line
from orchestrator.core.sqs import MAX_BATCH_ENTRIES

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

MAX_WAIT_SECONDS = 20
"""SQS's longest long poll."""


@dataclass(eq=False)
class Held:
    """One received message. Times are the worker's monotonic clock."""

    message: dict[str, Any]
    received_at: float
    extended_at: float
    """When its visibility timeout was last (re)started: on receive, then by heartbeats."""
    stop_extending_at: float | None = None
    """Set when its request starts running: the invocation deadline."""
    queue_url: str = ""
    """The queue it came from: its visibility changes and its delete go there."""
    lane: str = "standard"
    """``standard`` or ``high`` (metrics and logs)."""

    @property
    def receipt_handle(self) -> str:
        return str(self.message["ReceiptHandle"])

    @property
    def message_id(self) -> str:
        return str(self.message.get("MessageId", ""))


@dataclass
class HeldMessages:
    """Thread-safe set of the messages the worker holds (module docstring)."""

    _items: dict[str, Held] = field(default_factory=dict)
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _extending: set[str] = field(default_factory=set)
    """Receipt handles a heartbeat is extending right now (between `due` and `extended`)."""

    def add(self, messages: Iterable[Held]) -> None:
        with self._lock:
            for held in messages:
                self._items[held.receipt_handle] = held

    def discard(self, messages: Iterable[Held]) -> None:
        """Forget the messages without waiting (they are gone from the queue already)."""
        with self._lock:
            for held in messages:
                self._items.pop(held.receipt_handle, None)

    def release(self, messages: Iterable[Held]) -> None:
        """Stop holding the messages before their visibility is changed or they are deleted:
        no heartbeat picks them from now on, and one already extending them has finished
        when this returns (module docstring)."""
        handles = {held.receipt_handle for held in messages}
        with self._lock:
            for handle in handles:
                self._items.pop(handle, None)
            while self._extending & handles:
                self._lock.wait()

    def all(self) -> list[Held]:
        with self._lock:
            return list(self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, held: object) -> bool:
        with self._lock:
            return isinstance(held, Held) and self._items.get(held.receipt_handle) is held

    def due(self, now: float, refresh_after: float) -> list[Held]:
        """Messages whose visibility was last started `refresh_after` seconds ago or more
        and whose request has not passed its invocation deadline. The caller (the heartbeat)
        must call `extended` with them when its visibility change has returned: until then a
        `release` of any of them waits."""
        with self._lock:
            due = [
                held
                for held in self._items.values()
                if now - held.extended_at >= refresh_after
                and (held.stop_extending_at is None or now < held.stop_extending_at)
            ]
            self._extending.update(held.receipt_handle for held in due)
            return due

    def extended(self, messages: Iterable[Held]) -> None:
        """The heartbeat's visibility change for these (from `due`) has returned."""
        with self._lock:
            self._extending.difference_update(held.receipt_handle for held in messages)
            self._lock.notify_all()


@dataclass(frozen=True, slots=True)
class QueueFailure:
    receipt_handle: str
    reason: str


class WorkQueue:
    """Receive, change visibility and delete on one region queue."""

    def __init__(self, queue_url: str, client: SQSClient, lane: str = "standard") -> None:
        self.url = queue_url
        self.lane = lane
        self._client = client

    def receive(
        self, max_messages: int, wait_seconds: int, visibility_timeout: int
    ) -> list[dict[str, Any]]:
        """One ReceiveMessage: up to `max_messages` (≤ 10), with every attribute, hidden for
        `visibility_timeout` seconds. AWS failures propagate (`AWS_ERRORS`)."""
        response = self._client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(max_messages, MAX_BATCH_ENTRIES)),
            WaitTimeSeconds=max(0, min(wait_seconds, MAX_WAIT_SECONDS)),
            VisibilityTimeout=visibility_timeout,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        return [dict(message) for message in response.get("Messages", [])]

    def change_visibility(self, entries: Sequence[tuple[str, int]]) -> list[QueueFailure]:
        """Set each (receipt handle, seconds) pair; returns the entries that failed."""
        failures: list[QueueFailure] = []
        for start in range(0, len(entries), MAX_BATCH_ENTRIES):
            chunk = entries[start : start + MAX_BATCH_ENTRIES]
            request: list[Any] = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": int(seconds)}
                for i, (handle, seconds) in enumerate(chunk)
            ]
            try:
                response = self._client.change_message_visibility_batch(
                    QueueUrl=self.url, Entries=request
                )
            except AWS_ERRORS as exc:
                reason = f"{error_code(exc)}: {one_line(exc)}"
                failures += [QueueFailure(handle, reason) for handle, _ in chunk]
                continue
            failures += [
                QueueFailure(chunk[int(f["Id"])][0], f"{f.get('Code')}: {f.get('Message', '')}")
                for f in response.get("Failed", [])
            ]
        return failures

    def delete(self, receipt_handles: Sequence[str]) -> list[QueueFailure]:
        """Delete the messages; returns those that failed."""
        failures: list[QueueFailure] = []
        for start in range(0, len(receipt_handles), MAX_BATCH_ENTRIES):
            chunk = receipt_handles[start : start + MAX_BATCH_ENTRIES]
            request: list[Any] = [
                {"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(chunk)
            ]
            try:
                response = self._client.delete_message_batch(QueueUrl=self.url, Entries=request)
            except AWS_ERRORS as exc:
                reason = f"{error_code(exc)}: {one_line(exc)}"
                failures += [QueueFailure(handle, reason) for handle in chunk]
                continue
            failures += [
                QueueFailure(chunk[int(f["Id"])], f"{f.get('Code')}: {f.get('Message', '')}")
                for f in response.get("Failed", [])
            ]
        return failures

    def redrive_target_url(self) -> str | None:
        """The URL of the queue's dead-letter queue from its RedrivePolicy, if it has one.
        AWS failures propagate."""
        attributes = self._client.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["RedrivePolicy"],
        ).get("Attributes", {})
        policy = attributes.get("RedrivePolicy")
        if not policy:
            return None
        arn = str(json.loads(policy).get("deadLetterTargetArn", ""))
        parts = arn.split(":")
        if len(parts) < 6:
            return None
        account, name = parts[4], parts[5]
        return str(
            self._client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        )
