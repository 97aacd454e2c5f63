"""Settling on its own thread: the runner hands a batch's outcomes over and starts the next.

Back-pressure: when settling falls behind (a slow table, S3, the DLQ), the model waits rather
than pile up finished batches that are still held (`MAX_PENDING_SETTLES`). Once an abort has
closed the worker nothing more is handed over: it handed every message back and released the
leases, so a predict that returned just then runs again elsewhere, as an abort allows.

The count of pending settles is guarded by the worker's lock, shared so that the worker reads
it together with its runner's state (idle: the runner free and nothing left to settle).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from orchestrator.worker.outcome import Outcome
from orchestrator.worker.settle import Settler

MAX_PENDING_SETTLES = 2
"""Batches (and stray outcomes) waiting to be settled before the next predict waits."""


class SettleQueue:
    """Outcomes handed to the settling thread (module docstring); a defect while settling
    goes to `fail`."""

    def __init__(
        self,
        *,
        settler: Settler,
        lock: threading.Condition,
        closed: threading.Event,
        fail: Callable[[BaseException], None],
    ) -> None:
        self.settler = settler
        self._lock = lock
        self._closed = closed
        self._fail = fail
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="worker-settle")
        self.pending = 0

    def submit(self, outcomes: list[Outcome]) -> None:
        """Hand outcomes to the settler thread; none once an abort has closed the worker
        (module docstring)."""
        with self._lock:
            if self._closed.is_set():
                return
            self.pending += 1

        def job() -> None:
            try:
                self.settler.settle(outcomes)
            except Exception as exc:
                self._fail(exc)
            finally:
                with self._lock:
                    self.pending -= 1
                    self._lock.notify_all()

        try:
            self._thread.submit(job)
        except RuntimeError:  # the pool shut down since the check above: closed, as above
            if not self._closed.is_set():
                raise
            with self._lock:
                self.pending -= 1

    def wait_for_room(self) -> None:
        """Back-pressure (module docstring): wait while too many settles are pending."""
        with self._lock:
            while self.pending > MAX_PENDING_SETTLES and not self._closed.is_set():
                self._lock.wait(0.2)

    def shutdown(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
