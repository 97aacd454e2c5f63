"""The worker: receive, batch, claim, predict, settle — and stop without losing anything.

`Worker` owns the threads, the lock and the shutdown; each step is its own module, wired
in here: `clients` (the AWS clients), `claiming` (claims and their leases), `predicting` (the
model thread and a predict under its timeout), `overrun` (the leases of a predict that
overran it), `settle_queue` and `settle` (the outcomes written), `handback` (leases and
messages given back).

Threads (all daemons; the main thread only waits for signals and runs the shutdown):

- **receiver**: gathers the next batch (`BatchGatherer`) and claims its requests (`Claimer`:
  one conditional write each, in parallel) while the model runs the current one, at most
  ``--prefetch-batches`` batches ahead — so the model waits neither for SQS nor for
  DynamoDB, whose table is a cross-region round trip away for most workers. One batch ahead
  leaves a single predict's time for a receive and a round of claims, and any call slower
  than usual makes the model wait; two (the default) absorb it;
- **runner**: runs one ``predict`` per batch on the model thread under
  ``--invocation-timeout`` and classifies the results (`Predictor`);
- **settler**: writes the outcomes (`Settler`, fed by `SettleQueue`) while the runner starts
  the next batch;
- **heartbeat**: extends the visibility of everything held (`Heartbeat`), and renews the
  leases of a timed-out predict that is still running (`Overrun`);
- **presence** and the **HTTP** server.

**Leases.** A claim's lease lasts ``--invocation-timeout`` + `LEASE_MARGIN_SECONDS`, plus, for a
batch claimed ahead, whatever is left of the running predict's timeout and a whole timeout for
each batch already waiting before it (the longest it can wait: `claiming`). A predict cannot
outlive the invocation timeout (its requests then fail as timed out), and settling starts right
after it, so on the happy path the lease never needs renewing: two writes per request, the claim
and the final write. The lease is renewed only for (a) a predict that overran its timeout and is
still running on the model thread — every heartbeat that finds the lease close to its end, until
the predict returns — so another worker never runs the same request while this one physically
still does (`overrun`); (b) a batch that waited longer than its lease allowed for
(`Claimer.ensure_leases`); (c) settling that started with less than `LEASE_RESERVE_SECONDS` left
(`settle`). The cost of a long lease is recovery after a crash (SIGKILL, OOM, a node lost
without notice): the claim is taken over only after it ends. That is the trade-off
``--invocation-timeout`` controls.

**Stopping** (dramatiq's order): `request_stop` (first SIGTERM) stops receiving, hands every
received-but-unstarted message back (`HandBack`: visibility 0; a batch already claimed ahead has
its leases released and its attempt refunded first), marks the presence item draining, lets the
running batch and its settling finish within ``--drain-seconds`` (else hands it back too), then
stops the heartbeat last and exits 0. `request_abort` (second SIGTERM, SIGINT) hands everything
back at once — running requests' leases released with a short grace so this process is gone
before anyone claims them — and exits `ExitCode.ABORTED`. An unexpected exception in any thread
is a defect: it is logged with its traceback, everything held is handed back, and the worker
exits `ExitCode.FAILURES` (an AWS failure never ends the worker: it is retried).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from orchestrator.core.command import ExitCode
from orchestrator.core.errors import AWS_ERRORS, one_line
from orchestrator.worker.batch import Item
from orchestrator.worker.batching import BatchGatherer
from orchestrator.worker.claiming import Claimer
from orchestrator.worker.clients import IO_THREADS, Clients, build_clients
from orchestrator.worker.config import WorkerSettings
from orchestrator.worker.handback import RELEASE_GRACE_SECONDS, HandBack
from orchestrator.worker.handler import Model
from orchestrator.worker.heartbeat import Heartbeat
from orchestrator.worker.lanes import HIGH, Lanes
from orchestrator.worker.metrics import HealthServer, WorkerMetrics
from orchestrator.worker.notify import Notifier
from orchestrator.worker.outcome import RETRY_BASE_SECONDS
from orchestrator.worker.overrun import Overrun
from orchestrator.worker.predicting import ModelThread, Predictor
from orchestrator.worker.presence import PresencePublisher
from orchestrator.worker.queue import HeldMessages, WorkQueue
from orchestrator.worker.records import RunLedger
from orchestrator.worker.request import InputReader
from orchestrator.worker.results import ResultStore
from orchestrator.worker.settle import Settler, find_dead_letter_target
from orchestrator.worker.settle_queue import SettleQueue

__all__ = ["Clients", "Worker", "build_clients"]

logger = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 15.0
"""Beyond the invocation timeout: time to settle a batch under its lease (and clock skew
between workers; EC2's clocks are NTP-disciplined to well under a second)."""
RECEIVE_BACKOFF_MAX_SECONDS = 20.0
_TICK = 0.05


class Worker:
    """One worker process's runtime (module docstring). Use `serve()` from the main thread."""

    def __init__(
        self,
        settings: WorkerSettings,
        model: Model,
        clients: Clients,
        *,
        metrics: WorkerMetrics | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
        presence_interval: float | None = None,
        poll_seconds: int | None = None,
        lease_margin_seconds: float = LEASE_MARGIN_SECONDS,
    ) -> None:
        self.settings = settings
        self.model = model
        self.metrics = metrics or WorkerMetrics()
        self._clock = clock
        self._monotonic = monotonic
        self.lease_seconds = settings.invocation_timeout + lease_margin_seconds

        self.held = HeldMessages()
        self.queue = WorkQueue(settings.queue_url, clients.sqs)
        high = settings.high_priority_queue_url
        self.lanes = Lanes(self.queue, WorkQueue(high, clients.sqs, HIGH) if high else None)
        self.gatherer = BatchGatherer(
            self.lanes,
            self.held,
            batch_size=settings.batch_size,
            max_wait=settings.max_wait,
            visibility_timeout=settings.visibility_timeout,
            clock=monotonic,
            sleep=self._sleep_unless_aborted,
            poll_seconds=settings.poll_seconds if poll_seconds is None else poll_seconds,
            received=lambda lane, count: self.metrics.received.labels(lane).inc(count),
        )
        self.heartbeat = Heartbeat(
            self.lanes, self.held, settings.visibility_timeout, self.metrics, monotonic
        )
        self.ledger = RunLedger(
            settings.table_name,
            clients.dynamodb,
            settings.worker_id,
            ttl_days=settings.record_ttl_days,
            clock=clock,
        )
        self.reader = InputReader(clients.s3, allow_https=settings.allow_https_input)
        self._clients = clients
        self._dead_letter_url = settings.dead_letter_queue_url

        self._io = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="worker-io")
        self._model_thread = ModelThread()
        self._notify_pool = ThreadPoolExecutor(2, thread_name_prefix="worker-notify")
        self._closed = threading.Event()
        self._lock = threading.Condition()
        self.hand_back = HandBack(
            ledger=self.ledger,
            io=self._io,
            held=self.held,
            lanes=self.lanes,
            metrics=self.metrics,
            park_seconds=self.gatherer.poll_seconds + 1,
            lock=self._lock,
        )
        self.settler = self._settler(clients)
        self.settling = SettleQueue(
            settler=self.settler, lock=self._lock, closed=self._closed, fail=self._fail
        )
        self.overrun = Overrun(
            lock=self._lock,
            ledger=self.ledger,
            hand_back=self.hand_back,
            metrics=self.metrics,
            lease_seconds=self.lease_seconds,
            clock=clock,
            monotonic=monotonic,
        )
        self.predictor = Predictor(
            model=model,
            model_thread=self._model_thread,
            reader=self.reader,
            settings=settings,
            metrics=self.metrics,
            closed=self._closed,
            overran=self.overrun.began,
            clock=clock,
            monotonic=monotonic,
            rng=rng,
            retry_base_seconds=retry_base_seconds,
        )
        self.claimer = Claimer(
            settings=settings,
            ledger=self.ledger,
            metrics=self.metrics,
            io=self._io,
            lease_seconds=self.lease_seconds,
            predict_deadline=lambda: self.predictor.deadline,
            batches_ahead=self._batches_ahead,
            keep_lease=self.hand_back.keep_lease,
            settle=self.settling.submit,
            clock=clock,
            monotonic=monotonic,
        )
        self.presence = self._presence(clients, presence_interval)
        self.http: HealthServer | None = None

        # Requests from signal handlers: plain attributes, read by the main thread's loop.
        self._stop_requested = False
        self._abort_requested = False
        self._stopping = threading.Event()
        self._handoff: list[list[Item]] = []
        self._slot = threading.Semaphore(settings.prefetch_batches)
        self._runner_busy = False
        self._loaded = False
        self._failure: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._heartbeat_stop = threading.Event()
        self.metrics.in_flight.set_function(lambda: len(self.held))

    def _settler(self, clients: Clients) -> Settler:
        return Settler(
            ledger=self.ledger,
            queue=self.lanes,
            held=self.held,
            results=ResultStore(
                clients.s3,
                self.settings.results_bucket,
                self.settings.results_prefix,
                self.settings.inline_result_max_bytes,
            ),
            notifier=Notifier(clients.sns_for_region, self.settings.region, self.metrics),
            dead_letters=None,
            io=self._io,
            notify_pool=self._notify_pool,
            metrics=self.metrics,
            lease_seconds=self.lease_seconds,
            forget_lease=self.hand_back.forget_lease,
            closed=self._closed,
            clock=self._clock,
        )

    def _presence(
        self, clients: Clients, presence_interval: float | None
    ) -> PresencePublisher | None:
        if not self.settings.workers_table:
            return None
        return PresencePublisher(
            clients.dynamodb,
            self.settings.workers_table,
            self.settings.region,
            self.settings.worker_id,
            self.settings.batch_size,
            busy=lambda: self.predictor.busy,
            clock=self._clock,
            **({"interval": presence_interval} if presence_interval else {}),
        )

    # -- control (any thread, signal handlers included) -------------------------------------------
    def request_stop(self) -> None:
        """Drain: stop receiving, finish or hand back, exit 0 (module docstring)."""
        self._stop_requested = True

    def request_abort(self) -> None:
        """Hand everything back at once and exit `ExitCode.ABORTED`."""
        self._abort_requested = True

    @property
    def ready(self) -> bool:
        return self._loaded and not self._stopping.is_set() and self._failure is None

    @property
    def alive(self) -> bool:
        stuck = self._stuck_since
        overran = stuck is not None and self._monotonic() - stuck > self.settings.invocation_timeout
        return self._failure is None and not overran

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    @property
    def _stuck_since(self) -> float | None:
        """When the running predict overran its timeout (`Overrun`); None otherwise."""
        return self.overrun.stuck_since

    # -- the main thread ---------------------------------------------------------------------------
    def serve(self) -> int:
        """Load the model, run until asked to stop, shut down in order; the exit status."""
        if self.settings.http_port is not None:
            self.http = HealthServer(
                self.settings.http_port, self.metrics, lambda: self.alive, lambda: self.ready
            ).start()
        self.metrics.ready.set_function(lambda: 1.0 if self.ready else 0.0)
        status = self._load_model()
        if status is not None:
            self._finish()
            return status
        self.settler.dead_letters = find_dead_letter_target(
            self._dead_letter_url, self.queue, self._clients.sqs
        )
        if self.presence is not None:
            self.presence.start()
        self._start_threads()
        logger.info(
            "worker started",
            extra={
                "queue_url": self.settings.queue_url,
                "high_priority_queue_url": self.settings.high_priority_queue_url,
                "batch_size": self.settings.batch_size,
                "http_port": self.http.port if self.http else None,
            },
        )
        while True:
            if self._failure is not None:
                self._abort_now("an unexpected error")
                return ExitCode.FAILURES
            if self._abort_requested:
                self._abort_now("a second signal")
                return ExitCode.ABORTED
            if self._stop_requested:
                return self._drain()
            time.sleep(_TICK)

    def _load_model(self) -> int | None:
        """None when loaded; else the exit status (stopped while loading, or load failed)."""
        started = self._monotonic()
        future = self._model_thread.submit(self.model.load)
        while not future.done():
            if self._stop_requested or self._abort_requested:
                logger.info("stopped while loading the model; nothing was received")
                return ExitCode.OK if not self._abort_requested else ExitCode.ABORTED
            time.sleep(_TICK)
        try:
            future.result()
        except Exception:
            logger.exception("the model's load() failed")
            return ExitCode.FAILURES
        self._loaded = True
        logger.info("model loaded", extra={"seconds": round(self._monotonic() - started, 3)})
        return None

    def _start_threads(self) -> None:
        for name, target in (
            ("worker-receiver", self._receive_loop),
            ("worker-runner", self._run_loop),
            ("worker-heartbeat", self._heartbeat_loop),
        ):
            thread = threading.Thread(target=self._guard(target), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # a defect: the main thread hands everything back
                self._fail(exc)

        return run

    def _fail(self, exc: BaseException) -> None:
        logger.error(
            "worker stopping on an unexpected error (a defect, not an AWS failure)",
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        if self._failure is None:
            self._failure = exc

    # -- receiving and claiming ------------------------------------------------------------------
    def _receive_loop(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            if self._stuck_since is not None:
                time.sleep(_TICK)  # the model thread is busy with an overrunning predict
                continue
            if not self._slot.acquire(timeout=0.2):
                continue  # a batch is already waiting for the runner
            try:
                batch = self.gatherer.gather(self._stopping.is_set)
            except AWS_ERRORS as exc:
                self._slot.release()
                logger.warning("receive failed: %s; retrying in %.0f s", one_line(exc), backoff)
                self.metrics.aws_errors.labels("sqs.receive_message").inc()
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, RECEIVE_BACKOFF_MAX_SECONDS)
                continue
            backoff = 1.0
            if self._stopping.is_set():  # the poll returned after the stop began
                self._slot.release()
                self.hand_back.messages(batch, "received while stopping", after_stop=True)
                continue
            runnable = self.claimer.prepare(batch)
            with self._lock:
                if runnable and not self._stopping.is_set():
                    self._handoff.append(runnable)
                    self._lock.notify_all()
                    continue
            self._slot.release()
            if runnable:  # the stop began while the batch was being claimed
                self.hand_back.unstarted(runnable, "received while stopping")

    def _batches_ahead(self) -> int:
        with self._lock:
            return len(self._handoff)

    # -- running -----------------------------------------------------------------------------------
    def _run_loop(self) -> None:
        while True:
            with self._lock:
                while not self._handoff and not self._stopping.is_set():
                    self._lock.wait(0.2)
                if self._stopping.is_set():
                    return  # the shutdown hands back what is still in the handoff
                items = self._handoff.pop(0)
                self._runner_busy = True
            self._slot.release()
            try:
                self.settling.wait_for_room()
                runnable = self.claimer.ensure_leases(items)
                if runnable:
                    self.settling.submit(self.predictor.predict(runnable))
            finally:
                with self._lock:
                    self._runner_busy = False
                    self._lock.notify_all()
            self._wait_while_stuck()

    def _wait_while_stuck(self) -> None:
        if self._stuck_since is None:
            return
        # The model thread is busy: hand back the batch gathered ahead, and receive nothing
        # until the predict returns (the receiver checks `_stuck_since`).
        with self._lock:
            waiting, self._handoff = self._handoff, []
        for items in waiting:
            self._slot.release()
            self.hand_back.unstarted(items, "the model is busy with an overrunning predict")
        while self._stuck_since is not None and not self._stopping.is_set():
            time.sleep(_TICK)

    # -- heartbeat ---------------------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while not self._heartbeat_stop.wait(self.heartbeat.interval):
            self.heartbeat.beat()
            self.overrun.renew(self.heartbeat.interval)

    # -- stopping ----------------------------------------------------------------------------------
    def _idle(self) -> bool:
        with self._lock:
            busy = self._runner_busy or self.settling.pending > 0
        receiving = any(t.is_alive() for t in self._threads if t.name == "worker-receiver")
        return not busy and not receiving

    def _stop_receiving(self) -> None:
        """Steps 1 and 2: stop receiving; hand back every received-but-unstarted batch."""
        with self._lock:
            self._stopping.set()
            unstarted, self._handoff = self._handoff, []
            self._lock.notify_all()
        for items in unstarted:
            self.hand_back.unstarted(items, "received but not started")

    def _drain(self) -> int:
        deadline = self._monotonic() + self.settings.drain_seconds
        logger.info("SIGTERM: draining", extra={"drain_seconds": self.settings.drain_seconds})
        self._stop_receiving()
        if self.presence is not None:
            self.presence.mark_draining()
        while not self._idle():
            if self._abort_requested or self._failure is not None:
                aborted_by_signal = self._abort_requested
                self._abort_now("a second signal" if aborted_by_signal else "an unexpected error")
                return ExitCode.ABORTED if aborted_by_signal else ExitCode.FAILURES
            if self._monotonic() >= deadline:
                if len(self.held):
                    logger.warning("the running batch does not fit in --drain-seconds: handed back")
                else:
                    logger.info(
                        "exiting with a long poll still open: a message it receives stays "
                        "invisible for --visibility-timeout, then comes back"
                    )
                self._closed.set()
                self._hand_back_everything()
                break
            time.sleep(_TICK)
        self._notify_pool.shutdown(wait=True)  # a few publishes at most, each bounded
        self._finish()
        logger.info("drained; exiting")
        return ExitCode.OK

    def _abort_now(self, why: str) -> None:
        logger.warning("stopping at once (%s): handing everything back", why)
        with self._lock:
            self._stopping.set()
            self._closed.set()
            self._handoff = []
            self._lock.notify_all()
        self._hand_back_everything()
        self._finish()

    def _hand_back_everything(self) -> None:
        """Release the leases of claimed requests (grace: we exit first), then make every
        held message visible at once."""
        held = self.held.all()
        with self._lock:
            leases = self.hand_back.leases_of(held)
            zombies = self.overrun.take()
        self.hand_back.release_all(leases + zombies, grace=RELEASE_GRACE_SECONDS, refund=True)
        self.hand_back.messages(held, "shutdown")

    def _finish(self) -> None:
        """Last: heartbeats stop, the presence item goes, the HTTP port closes."""
        self.hand_back.release_all(self.overrun.take(), grace=RELEASE_GRACE_SECONDS)
        self._heartbeat_stop.set()
        if self.presence is not None:
            self.presence.withdraw()
        if self.http is not None:
            self.http.stop()
        # The I/O pool stays usable: a receiver finishing its claims as the process stops
        # still hands them back. Its idle threads end with the interpreter.
        self.settling.shutdown()
        self._notify_pool.shutdown(wait=False, cancel_futures=True)
        self._model_thread.shutdown()

    def _sleep_unless_aborted(self, seconds: float) -> None:
        self._stopping.wait(seconds)
