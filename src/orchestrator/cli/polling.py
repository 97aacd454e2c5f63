"""Polling several region queues at once until a stop condition: the consumer's engine."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import AWS_ERRORS, one_line
from orchestrator.core.sqs import MAX_BATCH_ENTRIES

from .distribution import Received, Stats
from .target import describe_endpoint, is_unreachable

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


@dataclass(frozen=True)
class QueueTarget:
    region: str
    queue_url: str
    client: SQSClient


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class Consumer:
    """Poll several region queues concurrently (one thread each) until a stop condition.

    `max_messages`: stop once this many distinct messages are counted. Messages a poll returns
    beyond that are made visible again at once (ChangeMessageVisibilityBatch 0), not deleted.
    `quotas`: the most to count per region (a fair sample of the backlog: see
    `distribution.proportional_quotas`); without them the first queues to answer fill the count.
    `idle_timeout`: stop when no queue has delivered a message for this many seconds.
    `delete`: delete what was counted (default); with False messages stay on the queues (they
    reappear after the visibility timeout; a message id is counted once per run).
    """

    def __init__(
        self,
        targets: Sequence[QueueTarget],
        *,
        max_messages: int | None = None,
        quotas: Mapping[str, int] | None = None,
        wait_seconds: int = 5,
        idle_timeout: float = 10.0,
        delete: bool = True,
        clock: Callable[[], float] = time.time,
        on_message: Callable[[Received], None] | None = None,
        warn: Callable[[str], None] = _warn,
    ) -> None:
        self.targets = list(targets)
        self.max_messages = max_messages
        self.quotas = dict(quotas) if quotas is not None else None
        self.wait_seconds = wait_seconds
        self.idle_timeout = idle_timeout
        self.delete = delete
        self.clock = clock
        self.on_message = on_message
        self.warn = warn
        self.stats = Stats(regions=[t.region for t in self.targets])
        # every region present from the start, so a live display may copy it while it grows
        self.counts: Counter[str] = Counter(dict.fromkeys(self.stats.regions, 0))
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._last_activity = time.monotonic()

    def _room(self, region: str) -> int:
        """How many more messages this region may count now (call under the lock)."""
        room = MAX_BATCH_ENTRIES
        if self.max_messages is not None:
            room = min(room, max(0, self.max_messages - self.stats.total))
        if self.quotas is not None:
            room = min(room, max(0, self.quotas.get(region, 0) - self.counts[region]))
        return room

    def _claim(
        self, region: str, messages: list[Any], received_at: float
    ) -> tuple[list[Any], list[Any]]:
        """Count what fits the budget; return (counted, excess). Re-deliveries are dropped
        from the count but still deleted (when deleting)."""
        counted: list[Any] = []
        excess: list[Any] = []
        with self._lock:
            for message in messages:
                key = (region, message["MessageId"])
                if key in self._seen:
                    counted.append(message)
                    continue
                if self._room(region) == 0:
                    excess.append(message)
                    continue
                self._seen.add(key)
                received = Received.from_message(region, message, received_at)
                self.stats.messages.append(received)
                self.counts[region] += 1
                counted.append(message)
                if self.on_message:
                    self.on_message(received)
            self._last_activity = time.monotonic()
            if self.max_messages is not None and self.stats.total >= self.max_messages:
                self._finish("max-messages")
        return counted, excess

    def _finish(self, reason: str, error: str | None = None) -> None:
        if not self._stop.is_set():
            self.stats.stopped = reason
            self.stats.error = error
            self._stop.set()

    def _poll(self, target: QueueTarget) -> None:
        client, url = target.client, target.queue_url
        try:
            while not self._stop.is_set():
                with self._lock:
                    batch = self._room(target.region)
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
                messages = list(response.get("Messages") or [])
                if not messages:
                    if self.wait_seconds == 0:
                        self._stop.wait(0.05)  # short polling: do not spin
                    continue
                counted, excess = self._claim(target.region, messages, received_at)
                if counted and self.delete:
                    self._delete(client, url, counted)
                if excess:
                    self._release(client, url, excess)
        except AWS_ERRORS as exc:
            if is_unreachable(exc):
                endpoint = describe_endpoint(client)
                reason = f"cannot reach SQS at {endpoint} ({target.region}): {one_line(exc)}"
            else:
                reason = f"{target.region}: {one_line(exc)}"
            with self._lock:
                self._finish("error", reason)

    def _delete(self, client: SQSClient, url: str, messages: list[Any]) -> None:
        entries: list[Any] = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        response = client.delete_message_batch(QueueUrl=url, Entries=entries)
        for failure in response.get("Failed", []):
            self.warn(f"delete failed for {failure.get('Id')}: {failure.get('Message')}")

    @staticmethod
    def _release(client: SQSClient, url: str, messages: list[Any]) -> None:
        """Hand messages beyond the count back to the queue at once."""
        entries: list[Any] = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ]
        client.change_message_visibility_batch(QueueUrl=url, Entries=entries)

    def run(self) -> Stats:
        start = time.monotonic()
        self._last_activity = start
        threads = [
            threading.Thread(target=self._poll, args=(t,), name=f"poll-{t.region}", daemon=True)
            for t in self.targets
        ]
        started: list[threading.Thread] = []
        try:  # Ctrl-C may come while the threads start, too
            for thread in threads:
                thread.start()
                started.append(thread)
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
            for thread in started:
                thread.join(self.wait_seconds + 5)
        self.stats.elapsed = time.monotonic() - start
        return self.stats
