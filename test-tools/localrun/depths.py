"""Queue depths sampled over time (for the demo's report and progress)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.core.loop import BackgroundLoop
from orchestrator.core.sqs import QueueDepth, read_depth


@dataclass(frozen=True)
class DepthSample:
    at: float
    """Seconds since the sampler started."""
    depths: Mapping[str, QueueDepth]


def read_depths(queues: Mapping[str, tuple[Any, str]]) -> dict[str, QueueDepth]:
    """Every named queue's depth now; `queues` maps a name to ``(client, queue_url)``."""
    return {name: read_depth(client, url) for name, (client, url) in queues.items()}


class DepthSampler:
    """Reads every named queue's depth each `interval` seconds in a background thread.

    `queues` maps a display name to ``(client, queue_url)``; the client must be in the
    queue's region. A failed read (the endpoint going away) skips that sample.
    """

    def __init__(
        self,
        queues: Mapping[str, tuple[Any, str]],
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queues = dict(queues)
        self._clock = clock
        self._lock = threading.Lock()
        self._samples: list[DepthSample] = []
        self._loop = BackgroundLoop(
            lambda _index: self.sample(),
            name="depth-sampler",
            interval=interval,
            error_backoff=interval,
            clock=clock,
        )
        self.started = clock()
        """Clock reading that sample times are relative to."""

    def start(self) -> DepthSampler:
        self.started = self._clock()
        self._loop.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)

    @property
    def failure(self) -> BaseException | None:
        """The defect that stopped sampling, if one did."""
        return self._loop.failure

    def sample(self) -> DepthSample:
        """Read every queue now and keep the sample."""
        depths = read_depths(self._queues)
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
