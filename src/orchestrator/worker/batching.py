"""Filling a batch: the knobs of Triton's and Ray Serve's dynamic batching, on SQS.

Wait (long poll, 20 s at a time) for the first message; then keep receiving until the batch
holds ``--batch-size`` messages or ``--max-wait`` seconds have passed since the first one,
whichever comes first. SQS long polls are whole seconds, so:

- while a second or more is left, long-poll for the rest (it returns as soon as anything
  arrives);
- with less than a second left, short-poll again at once while receives keep returning
  messages; after an empty one, sleep out the rest of the wait and take one last look.

At full load one receive of 10 fills a batch of 10; a lone message costs the first receive,
one empty short poll and one last look after ``--max-wait``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from orchestrator.core.errors import AWS_ERRORS, one_line
from orchestrator.core.sqs import MAX_BATCH_ENTRIES
from orchestrator.worker.lanes import Lanes
from orchestrator.worker.queue import MAX_WAIT_SECONDS, Held, HeldMessages

logger = logging.getLogger(__name__)


class BatchGatherer:
    def __init__(
        self,
        lanes: Lanes,
        held: HeldMessages,
        *,
        batch_size: int,
        max_wait: float,
        visibility_timeout: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
        poll_seconds: int = MAX_WAIT_SECONDS,
        received: Callable[[str, int], Any] | None = None,
    ) -> None:
        self._lanes = lanes
        self._held = held
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.visibility_timeout = visibility_timeout
        self._clock = clock
        self._sleep = sleep
        self.poll_seconds = poll_seconds
        self._received = received

    def gather(self, stopping: Callable[[], bool]) -> list[Held]:
        """One batch (module docstring); empty when `stopping()` became true first.

        Every message is in `held` from the moment it is received. An AWS failure on the
        first receive propagates (the caller backs off); once messages are held, a failure
        ends the filling and the batch goes as it is.
        """
        batch: list[Held] = []
        while not batch:
            if stopping():
                return batch
            batch += self._receive(self.batch_size, self.poll_seconds, stopping)
        deadline = batch[0].received_at + self.max_wait
        last_returned = True
        while len(batch) < self.batch_size and not stopping():
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            need = self.batch_size - len(batch)
            try:
                if remaining >= 1:
                    got = self._receive(need, int(remaining), stopping)
                elif last_returned:
                    got = self._receive(need, 0, stopping)
                else:
                    self._sleep(remaining)  # a stop wakes it: then nothing more is received
                    if not stopping():
                        batch += self._receive(need, 0, stopping)
                    break
            except AWS_ERRORS as exc:
                logger.warning("receive failed while filling a batch: %s", one_line(exc))
                break
            last_returned = bool(got)
            batch += got
        return batch

    def _receive(self, need: int, wait: int, stopping: Callable[[], bool]) -> list[Held]:
        queue, messages = self._lanes.receive(
            min(need, MAX_BATCH_ENTRIES), wait, self.visibility_timeout, stopping
        )
        now = self._clock()
        held = [
            Held(message, received_at=now, extended_at=now, queue_url=queue.url, lane=queue.lane)
            for message in messages
        ]
        if held and self._received is not None:
            self._received(queue.lane, len(held))
        self._held.add(held)
        return held
