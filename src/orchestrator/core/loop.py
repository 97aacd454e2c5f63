"""A step run over and over in background threads until `stop()`: the one loop behind the
local SQS pollers, the depth sampler, the simulated GPU workers (and any component's poll
threads).

What a caller may rely on:

- `start()` starts `threads` daemon threads; each calls ``step(index)`` (index 0..threads-1)
  until a stop is requested.
- `interval` is the least time between the starts of two steps of one thread: a periodic
  sampler passes its period, a poller passes 0 and lets its long poll do the waiting. Every
  pause is `wait()`, which `stop()` interrupts at once.
- An AWS failure (`AWS_ERRORS`: throttling, the endpoint gone, a timeout) is logged as one
  warning line and the thread tries again after `error_backoff` seconds: the loops run
  long-lived services that must outlive an outage of the thing they poll.
- Any other exception is a defect. It is logged with its traceback, kept in `failure`, and it
  ends the whole loop (every thread finishes its current step and returns). It is never
  retried: a `TypeError` retried forever would look like a service that is merely slow. The
  owner reads `failure` (the local console shows it, the demo fails its run).
- `stop(timeout)` asks every thread to finish after its current step and joins them all
  within `timeout` seconds in total; it returns True when every thread has ended. Stopping
  twice is harmless. A step that holds work it has not started (a gathered batch) checks
  `stopping` and hands it back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Self

from orchestrator.core.errors import AWS_ERRORS, one_line

logger = logging.getLogger(__name__)

Step = Callable[[int], object]
"""``step(thread_index)``; its return value is ignored."""


class BackgroundLoop:
    """`threads` daemon threads calling `step(index)` until `stop()` (module docstring)."""

    def __init__(
        self,
        step: Step,
        *,
        name: str,
        threads: int = 1,
        interval: float = 0.0,
        error_backoff: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threads < 1:
            raise ValueError(f"{name}: threads must be at least 1, got {threads}")
        if interval < 0 or error_backoff < 0:
            raise ValueError(f"{name}: interval and error_backoff must not be negative")
        self.name = name
        self._step = step
        self._count = threads
        self._interval = interval
        self._error_backoff = error_backoff
        self._clock = clock
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._failure: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        """Start the threads; `RuntimeError` if they are still running from a previous start."""
        if self.running:
            raise RuntimeError(f"{self.name}: already running")
        self._stopping.clear()
        with self._lock:
            self._failure = None
        names = (
            [self.name] if self._count == 1 else [f"{self.name}-{i}" for i in range(self._count)]
        )
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=thread_name, daemon=True)
            for i, thread_name in enumerate(names)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def request_stop(self) -> None:
        """Ask every thread to stop after its current step, without waiting for them (to stop
        several loops at once, then `stop()` each)."""
        self._stopping.set()

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Ask every thread to stop after its current step; join them within `timeout`
        seconds in total (None: as long as it takes). True when all have ended."""
        self._stopping.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread is threading.current_thread():
                continue  # a step that stops its own loop cannot wait for itself
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        return not self.running

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for steps and owners ----------------------------------------------------------------
    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, less if a stop is requested; True when stopping."""
        return self._stopping.wait(max(seconds, 0.0))

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def running(self) -> bool:
        """True while any thread is alive."""
        return any(thread.is_alive() for thread in self._threads)

    @property
    def failure(self) -> BaseException | None:
        """The unexpected exception that ended the loop, if one did."""
        with self._lock:
            return self._failure

    # -- one thread --------------------------------------------------------------------------
    def _run(self, index: int) -> None:
        while not self._stopping.is_set():
            began = self._clock()
            try:
                self._step(index)
            except AWS_ERRORS as exc:
                logger.warning(
                    "%s: %s; retrying in %.1f s", self.name, one_line(exc), self._error_backoff
                )
                self.wait(self._error_backoff)
                continue
            except Exception as exc:  # a defect: log it in full and end the loop (docstring)
                logger.exception("%s stopped by an unexpected error", self.name)
                with self._lock:
                    self._failure = self._failure or exc
                self._stopping.set()
                return
            if self._interval:
                self.wait(self._interval - (self._clock() - began))
