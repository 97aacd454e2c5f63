"""Running the model: the one thread it runs on, and a batch's predict under its timeout.

Every ``load()`` and ``predict()`` runs on `ModelThread` (CUDA contexts are per thread). The
runner waits for a predict at most ``--invocation-timeout``, then classifies what it returned
(`Predictor.predict`): one outcome per request. A predict that raised fails its whole batch;
one that returned the wrong number of results fails it as a model error; one that overran its
timeout fails its requests as timed out while it still runs on the model thread, and the
worker keeps the leases of those that will be retried until it returns (`overran`), so no
other worker runs them meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from orchestrator.worker.batch import Item
from orchestrator.worker.config import WorkerSettings
from orchestrator.worker.exceptions import FailureCode, PermanentError
from orchestrator.worker.handler import Model
from orchestrator.worker.metrics import WorkerMetrics
from orchestrator.worker.outcome import RETRY_BASE_SECONDS, Outcome, classify, describe, failure
from orchestrator.worker.request import InputReader

logger = logging.getLogger(__name__)

_TICK = 0.05


class ModelThread:
    """The one thread every load() and predict() runs on (CUDA contexts are per thread).

    A daemon thread rather than an executor's: a predict that never returns must not keep
    the process from exiting once everything has been handed back."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Callable[..., Any], tuple[Any, ...], Future[Any]] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="worker-model", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((fn, args, future))
        return future

    def shutdown(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the waiting runner, which classifies it
                future.set_exception(exc)


def future_wait(future: Future[Any], seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        future.exception(timeout=seconds)


class Predictor:
    """Runs a batch's predict for the runner (module docstring). While it runs, `busy` is its
    size (presence) and `deadline` its timeout on the monotonic clock (claims ahead); 0
    otherwise."""

    def __init__(
        self,
        *,
        model: Model,
        model_thread: ModelThread,
        reader: InputReader,
        settings: WorkerSettings,
        metrics: WorkerMetrics,
        closed: threading.Event,
        overran: Callable[[list[Outcome], Future[Any]], None],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
    ) -> None:
        self.model = model
        self._model_thread = model_thread
        self.reader = reader
        self.settings = settings
        self.metrics = metrics
        self._closed = closed
        self._overran = overran
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._retry_base = retry_base_seconds
        self.busy = 0
        self.deadline = 0.0

    def predict(self, items: list[Item]) -> list[Outcome]:
        """The batch's outcomes; none when the shutdown handed the batch back meanwhile."""
        requests = [item.as_request(self.reader) for item in items]
        started = self._monotonic()
        self._started(items, started)
        deadline = started + self.settings.invocation_timeout
        self.deadline = deadline
        future = self._model_thread.submit(self.model.predict, requests)
        try:
            while not future.done() and self._monotonic() < deadline:
                if self._closed.is_set():
                    return []  # the shutdown handed the batch back
                future_wait(future, min(_TICK * 4, max(deadline - self._monotonic(), 0.0)))
        finally:
            self.busy = 0
            self.deadline = 0.0
            self.metrics.running.set(0)
        if not future.done():
            return self._timed_out(items, future)
        self.metrics.processing.observe(self._monotonic() - started)
        return self._outcomes(items, future)

    def _started(self, items: list[Item], started: float) -> None:
        now = self._clock()
        for item in items:
            item.held.stop_extending_at = started + self.settings.invocation_timeout
            if item.entered_queue_at:
                wait = max(now - item.entered_queue_at, 0.0)
                self.metrics.queue_wait.labels(item.held.lane).observe(wait)
        self.busy = len(items)
        self.metrics.running.set(len(items))
        self.metrics.batches.inc()
        self.metrics.batch_size.observe(len(items))

    def _outcomes(self, items: list[Item], future: Future[Any]) -> list[Outcome]:
        """What a predict that returned (or raised) in time means for each request."""
        try:
            results = future.result()
        except Exception as exc:  # the model raised: the whole batch shares the failure
            code, message, retryable = describe(exc)
            if not isinstance(exc, PermanentError):
                logger.warning(
                    "predict raised %s",
                    message,
                    exc_info=exc,
                    extra={"request_ids": [i.request_id for i in items]},
                )
            return [
                self._failed_attempt(item, code, message, retryable=retryable) for item in items
            ]
        if (
            not isinstance(results, Sequence)
            or isinstance(results, str | bytes)
            or len(results) != len(items)
        ):
            count = len(results) if isinstance(results, Sequence) else type(results).__name__
            message = f"predict returned {count} results for {len(items)} requests"
            return [
                self._failed_attempt(item, str(FailureCode.MODEL_ERROR), message, retryable=True)
                for item in items
            ]
        return [
            classify(
                item,
                result,
                max_attempts=self.settings.max_attempts,
                rng=self._rng,
                retry_base=self._retry_base,
            )
            for item, result in zip(items, results, strict=True)
        ]

    def _failed_attempt(
        self, item: Item, code: str, message: str, *, retryable: bool, keep_lease: bool = False
    ) -> Outcome:
        return failure(
            item,
            code,
            message,
            retryable=retryable,
            max_attempts=self.settings.max_attempts,
            rng=self._rng,
            retry_base=self._retry_base,
            keep_lease=keep_lease,
        )

    def _timed_out(self, items: list[Item], future: Future[Any]) -> list[Outcome]:
        """The predict overran: its requests fail as timed out now; the model thread is
        still busy, so the worker keeps the leases of those that will be retried (`overran`:
        the heartbeat renews them) until it returns — no other worker may run them
        meanwhile."""
        message = f"predict did not return within {self.settings.invocation_timeout:g} s"
        logger.error(message, extra={"request_ids": [i.request_id for i in items]})
        outcomes = [
            self._failed_attempt(
                item, str(FailureCode.INVOCATION_TIMEOUT), message, retryable=True, keep_lease=True
            )
            for item in items
        ]
        self._overran(outcomes, future)
        return outcomes
