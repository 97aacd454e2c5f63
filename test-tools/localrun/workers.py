"""Simulated GPU consumers: threads that long-poll a region queue, hold one request for a few
hundred milliseconds of "GPU time", record the completion, then delete the message.

A busy worker holds exactly one message in flight, which is what the distributor's
``expected-wait`` routing reads as the region's capacity.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completion:
    """One request a worker finished."""

    request_id: str | None
    region: str
    worker: str
    message_id: str
    origin_message_id: str | None
    attempt: str | None
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
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._completions: list[Completion] = []

    def start(self) -> GpuWorkers:
        self._stopping.clear()
        for region, count in self.capacities.items():
            for index in range(count):
                name = f"{region}/gpu-{index}"
                thread = threading.Thread(
                    target=self._run, args=(region, name), name=name, daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work; a request being processed is finished first."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        self._threads = []

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

    def _run(self, region: str, name: str) -> None:
        client = self._clients[region]
        url = self._queue_urls[region]
        rng = random.Random(f"{self._seed}/{name}")
        while not self._stopping.is_set():
            try:
                response = client.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=1,
                    WaitTimeSeconds=self._long_poll,
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            except Exception as exc:
                logger.warning("%s: receive failed: %s", name, exc)
                self._stopping.wait(0.5)
                continue
            for message in response.get("Messages") or []:
                self._process(client, url, region, name, message, rng)

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
        attributes = {
            key: value.get("StringValue")
            for key, value in (message.get("MessageAttributes") or {}).items()
        }
        completion = Completion(
            request_id=attributes.get("request_id") or _request_id(message["Body"]),
            region=region,
            worker=name,
            message_id=message["MessageId"],
            origin_message_id=attributes.get("origin_message_id"),
            attempt=attributes.get("attempt"),
            receive_count=int((message.get("Attributes") or {}).get("ApproximateReceiveCount", 1)),
            received_at=received,
            completed_at=time.time(),
        )
        with self._lock:
            self._completions.append(completion)
        try:
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        except Exception as exc:  # it will come back and be processed again: the audit sees it
            logger.warning("%s: delete failed: %s", name, exc)


def _request_id(body: str) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    value = document.get("request_id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None
