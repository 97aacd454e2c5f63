"""Forwarding to region queues: one client per region, every call of a batch concurrently."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from orchestrator.core.sqs import OutgoingMessage, SendFailure, chunks, send_chunk

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


class Forwarder:
    def __init__(
        self, queue_urls: Mapping[str, str], clients: Mapping[str, SQSClient], executor: Executor
    ) -> None:
        self._queue_urls = dict(queue_urls)
        self._clients = clients
        self._executor = executor

    @property
    def regions(self) -> list[str]:
        return list(self._queue_urls)

    def send(self, plan: Mapping[str, Sequence[OutgoingMessage]]) -> dict[str, list[SendFailure]]:
        """Send each region's messages; return the failures per region (empty lists: all sent).

        Every SendMessageBatch call of the plan, to every region, is in flight at once, so a
        batch costs the slowest region's round trip, not the sum of them.
        """
        futures = [
            (
                region,
                self._executor.submit(
                    send_chunk, self._clients[region], self._queue_urls[region], chunk
                ),
            )
            for region, messages in plan.items()
            for chunk in chunks(messages)
        ]
        failures: dict[str, list[SendFailure]] = {region: [] for region in plan}
        for region, future in futures:
            failures[region].extend(future.result())
        return failures
