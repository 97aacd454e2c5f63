"""Queue depths sampled over time (for the live console and the demo's report)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

DEPTH_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]


@dataclass(frozen=True)
class Depth:
    visible: int
    in_flight: int

    @property
    def total(self) -> int:
        return self.visible + self.in_flight


@dataclass(frozen=True)
class DepthSample:
    at: float
    """Seconds since the sampler started."""
    depths: Mapping[str, Depth]


def read_depth(client: Any, queue_url: str) -> Depth:
    attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=DEPTH_ATTRIBUTES)[
        "Attributes"
    ]
    return Depth(
        int(attributes.get("ApproximateNumberOfMessages", 0)),
        int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


class DepthSampler:
    """Reads every named queue's depth each `interval` seconds in a thread.

    `queues` maps a display name to ``(client, queue_url)``; the client must be in the
    queue's region.
    """

    def __init__(
        self,
        queues: Mapping[str, tuple[Any, str]],
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queues = dict(queues)
        self._interval = interval
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._samples: list[DepthSample] = []
        self.started = clock()
        """Clock reading that sample times are relative to."""

    def start(self) -> DepthSampler:
        self.started = self._clock()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="depth-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def sample(self) -> DepthSample:
        """Read every queue now and keep the sample."""
        depths = {name: read_depth(client, url) for name, (client, url) in self._queues.items()}
        sample = DepthSample(round(self._clock() - self.started, 3), depths)
        with self._lock:
            self._samples.append(sample)
        return sample

    @property
    def samples(self) -> list[DepthSample]:
        with self._lock:
            return list(self._samples)

    def latest(self) -> DepthSample | None:
        with self._lock:
            return self._samples[-1] if self._samples else None

    def _run(self) -> None:
        while not self._stopping.is_set():
            began = self._clock()
            try:
                self.sample()
            except Exception as exc:
                logger.warning("depth sample failed: %s", exc)
            self._stopping.wait(max(self._interval - (self._clock() - began), 0.0))
