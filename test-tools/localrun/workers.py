"""Simulated GPU consumers: threads that long-poll a region queue, hold one request for a few
hundred milliseconds of "GPU time", record the completion, then delete the message.

A busy worker holds exactly one message in flight, which is what the distributor's
``expected-wait`` routing reads as the region's capacity.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.core.attributes import RoutingAttributes
from orchestrator.core.errors import AWS_ERRORS
from orchestrator.core.loop import BackgroundLoop
from orchestrator.core.request import readable_request_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completion:
    """One request a worker finished."""

    request_id: str | None
    region: str
    worker: str
    message_id: str
    origin_message_id: str | None
    attempt: int | None
    receive_count: int
    received_at: float
    completed_at: float
    """Wall-clock (``time.time()``) seconds."""


class GpuWorkers:
    """`capacities[region]` worker threads per region, each on that region's SQS client."""

    def __init__(
        self,
        clients: Mapping[str, Any],
        queue_urls: Mapping[str, str],
        capacities: Mapping[str, int],
        *,
        gpu_seconds: float = 0.3,
        jitter: float = 0.3,
        seed: int = 0,
        long_poll_seconds: int = 1,
    ) -> None:
        self._clients = clients
        self._queue_urls = queue_urls
        self.capacities = dict(capacities)
        self._gpu_seconds = gpu_seconds
        self._jitter = jitter
        self._seed = seed
        self._long_poll = long_poll_seconds
        self._lock = threading.Lock()
        self._completions: list[Completion] = []
        # One loop per region, one thread per GPU; a failed receive is retried after a pause.
        self._loops = [
            BackgroundLoop(
                self._worker_step(region), name=f"{region}/gpu", threads=count, error_backoff=0.5
            )
            for region, count in self.capacities.items()
            if count > 0
        ]

    def start(self) -> GpuWorkers:
        for loop in self._loops:
            loop.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work; a request being processed is finished first."""
        for loop in self._loops:
            loop.request_stop()  # every region stops taking work at once
        deadline = time.monotonic() + timeout
        for loop in self._loops:
            loop.stop(max(deadline - time.monotonic(), 0.0))

    @property
    def failure(self) -> BaseException | None:
        """The defect that stopped a region's workers, if one did."""
        return next((loop.failure for loop in self._loops if loop.failure), None)

    def __enter__(self) -> GpuWorkers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def completions(self) -> list[Completion]:
        with self._lock:
            return list(self._completions)

    def processed_per_region(self) -> Counter[str]:
        with self._lock:
            return Counter(c.region for c in self._completions)

    def processed_request_ids(self) -> set[str]:
        with self._lock:
            return {c.request_id for c in self._completions if c.request_id}

    def _worker_step(self, region: str) -> Callable[[int], None]:
        client = self._clients[region]
        url = self._queue_urls[region]
        rngs: dict[int, random.Random] = {}

        def step(index: int) -> None:
            name = f"{region}/gpu-{index}"
            rng = rngs.setdefault(index, random.Random(f"{self._seed}/{name}"))
            response = client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=self._long_poll,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            for message in response.get("Messages") or []:
                self._process(client, url, region, name, message, rng)

        return step

    def _process(
        self,
        client: Any,
        url: str,
        region: str,
        name: str,
        message: Mapping[str, Any],
        rng: random.Random,
    ) -> None:
        received = time.time()
        spread = self._gpu_seconds * self._jitter
        time.sleep(max(self._gpu_seconds + rng.uniform(-spread, spread), 0.0))
        routing = RoutingAttributes.from_message(message)
        completion = Completion(
            # A message the distributor did not forward has no routing attributes.
            request_id=routing.request_id if routing else readable_request_id(message["Body"]),
            region=region,
            worker=name,
            message_id=message["MessageId"],
            origin_message_id=routing.origin_message_id if routing else None,
            attempt=routing.attempt if routing else None,
            receive_count=int((message.get("Attributes") or {}).get("ApproximateReceiveCount", 1)),
            received_at=received,
            completed_at=time.time(),
        )
        with self._lock:
            self._completions.append(completion)
        try:
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        except AWS_ERRORS as exc:  # it will come back and be processed again: the audit sees it
            logger.warning("%s: delete failed: %s", name, exc)
