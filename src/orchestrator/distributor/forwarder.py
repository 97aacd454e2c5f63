"""Forwarding to region queues: one client per region, every call of a batch concurrently."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.core.sqs import OutgoingMessage, SendFailure, chunks, send_chunk

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


@dataclass(frozen=True, slots=True, order=True)
class Destination:
    """One queue of a region: its standard queue, or its high-priority queue."""

    region: str
    high: bool = False


class Forwarder:
    def __init__(
        self,
        queue_urls: Mapping[str, str],
        clients: Mapping[str, SQSClient],
        executor: Executor,
        high_queue_urls: Mapping[str, str] | None = None,
    ) -> None:
        """`high_queue_urls`: each region's high-priority queue (`HIGH_PRIORITY_QUEUES`)."""
        self._queue_urls = dict(queue_urls)
        self._high_urls = dict(high_queue_urls or {})
        self._clients = clients
        self._executor = executor

    @property
    def regions(self) -> list[str]:
        return list(self._queue_urls)

    @property
    def has_high_priority_queues(self) -> bool:
        return bool(self._high_urls)

    def url(self, destination: Destination) -> str:
        if destination.high:
            return self._high_urls[destination.region]
        return self._queue_urls[destination.region]

    def send(
        self, plan: Mapping[Destination, Sequence[OutgoingMessage]]
    ) -> dict[Destination, list[SendFailure]]:
        """Send each queue's messages; return the failures per queue (empty lists: all sent).

        Every SendMessageBatch call of the plan, to every queue of every region, is in flight
        at once, so a batch costs the slowest region's round trip, not the sum of them.
        """
        futures = [
            (
                destination,
                self._executor.submit(
                    send_chunk, self._clients[destination.region], self.url(destination), chunk
                ),
            )
            for destination, messages in plan.items()
            for chunk in chunks(messages)
        ]
        failures: dict[Destination, list[SendFailure]] = {destination: [] for destination in plan}
        for destination, future in futures:
            failures[destination].extend(future.result())
        return failures
