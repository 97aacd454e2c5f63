"""The worker: receive, batch, claim, predict, settle — and stop without losing anything.

Threads (all daemons; the main thread only waits for signals and runs the shutdown):

- **receiver**: gathers the next batch (`BatchGatherer`) and claims its requests (one
  conditional write each, in parallel) while the model runs the current one, at most
  ``--prefetch-batches`` batches ahead — so the model waits neither for SQS nor for
  DynamoDB, whose table is a cross-region round trip away for most workers. One batch ahead
  leaves a single predict's time for a receive and a round of claims, and any call slower
  than usual makes the model wait; two (the default) absorb it;
- **runner**: runs one ``predict`` per batch on the model thread under
  ``--invocation-timeout`` and classifies the results;
- **settler**: writes the outcomes (`Settler`) while the runner starts the next batch;
- **heartbeat**: extends the visibility of everything held, and renews the leases of a
  timed-out predict that is still running;
- **presence** and the **HTTP** server.

**Leases.** A claim's lease lasts ``--invocation-timeout`` + `LEASE_MARGIN_SECONDS`, plus, for a
batch claimed ahead, whatever is left of the running predict's timeout and a whole timeout for each
batch already waiting before it (the longest it can wait). A predict cannot outlive the invocation
timeout (its requests then fail as timed out), and settling starts right after it, so on the happy
path the lease never needs renewing: two writes per request, the claim and the final write. The
lease is renewed only for (a) a predict that overran its timeout and is still running on the model
thread — every heartbeat that finds the lease close to its end, until the predict returns — so
another worker never runs the same request while this one physically still does; (b) a batch that
waited longer than its lease allowed for; (c) settling that started with less than
`LEASE_RESERVE_SECONDS` left. The cost of a long lease is recovery after a crash (SIGKILL, OOM, a
node lost without notice): the claim is taken over only after it ends. That is the trade-off
``--invocation-timeout`` controls.

**Stopping** (dramatiq's order): `request_stop` (first SIGTERM) stops receiving, hands every
received-but-unstarted message back (visibility 0; a batch already claimed ahead has its
leases released and its attempt refunded first), marks the presence item draining, lets the
running batch and its settling finish within ``--drain-seconds`` (else hands it back too),
then stops the heartbeat last and exits 0. `request_abort` (second SIGTERM, SIGINT) hands
everything back at once — running requests' leases released with a short grace so this
process is gone before anyone claims them — and exits `ExitCode.ABORTED`. An unexpected
exception in any thread is a defect: it is logged with its traceback, everything held is
handed back, and the worker exits `ExitCode.FAILURES` (an AWS failure never ends the worker:
it is retried).
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from orchestrator.core.command import ExitCode
from orchestrator.core.errors import AWS_ERRORS, one_line
from orchestrator.core.request import InvalidRequestError, readable_request_id
from orchestrator.worker.batch import Item, group_copies, parse_item
from orchestrator.worker.batching import BatchGatherer
from orchestrator.worker.config import WorkerSettings
from orchestrator.worker.exceptions import FailureCode, PermanentError
from orchestrator.worker.handler import Model
from orchestrator.worker.heartbeat import Heartbeat
from orchestrator.worker.lanes import HIGH, Lanes
from orchestrator.worker.metrics import HealthServer, WorkerMetrics
from orchestrator.worker.notify import Notifier
from orchestrator.worker.outcome import (
    RETRY_BASE_SECONDS,
    Action,
    Outcome,
    classify,
    describe,
    failure,
)
from orchestrator.worker.presence import PresencePublisher
from orchestrator.worker.queue import Held, HeldMessages, WorkQueue
from orchestrator.worker.records import ClaimKind, ClaimOutcome, FencedError, Lease, RunLedger
from orchestrator.worker.request import InputReader
from orchestrator.worker.results import ResultStore
from orchestrator.worker.settle import LEASE_RESERVE_SECONDS, DeadLetterTarget, Settler

logger = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 15.0
"""Beyond the invocation timeout: time to settle a batch under its lease (and clock skew
between workers; EC2's clocks are NTP-disciplined to well under a second)."""
RELEASE_GRACE_SECONDS = 2.0
"""A lease released by a shutdown ends this much later: the process exits first."""
UNCLAIMED_RETRY_SECONDS = 5
"""A message whose claim could not be written (table unreachable) comes back after this."""
IO_THREADS = 16
MAX_PENDING_SETTLES = 2
"""Batches (and stray outcomes) waiting to be settled before the next predict waits."""
# A worker has no other region to fall back on: more retries than the distributor's clients.
# SQS's read time-out must outlast a 20-second long poll.
_RETRIES: Any = {"mode": "standard", "max_attempts": 4}
SQS_CONFIG = Config(
    connect_timeout=3, read_timeout=30, retries=_RETRIES, max_pool_connections=IO_THREADS + 4
)
DYNAMODB_CONFIG = Config(
    connect_timeout=3, read_timeout=10, retries=_RETRIES, max_pool_connections=IO_THREADS + 4
)
S3_CONFIG = Config(
    connect_timeout=3, read_timeout=60, retries=_RETRIES, max_pool_connections=IO_THREADS + 4
)
SNS_CONFIG = Config(connect_timeout=3, read_timeout=10, retries=_RETRIES)
RECEIVE_BACKOFF_MAX_SECONDS = 20.0
_TICK = 0.05


@dataclass(frozen=True)
class Clients:
    """The AWS clients a worker uses; built by the caller (`cli.build_clients`), injected."""

    sqs: Any
    """The queue's region: the work queue and its dead-letter queue."""
    dynamodb: Any
    """The table's region (primary): request records and presence."""
    s3: Any
    """The queue's region: inputs and large results."""
    sns_for_region: Callable[[str], Any]
    """An SNS client for a topic's region (topics may live anywhere)."""


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
        self._rng = rng or random.Random()
        self._retry_base = retry_base_seconds
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
        self._settle_thread = ThreadPoolExecutor(1, thread_name_prefix="worker-settle")
        self._notify_pool = ThreadPoolExecutor(2, thread_name_prefix="worker-notify")
        self._closed = threading.Event()
        self.settler = Settler(
            ledger=self.ledger,
            queue=self.lanes,
            held=self.held,
            results=ResultStore(
                clients.s3,
                settings.results_bucket,
                settings.results_prefix,
                settings.inline_result_max_bytes,
            ),
            notifier=Notifier(clients.sns_for_region, settings.region, self.metrics),
            dead_letters=None,
            io=self._io,
            notify_pool=self._notify_pool,
            metrics=self.metrics,
            lease_seconds=self.lease_seconds,
            forget_lease=self._forget_lease,
            closed=self._closed,
            clock=clock,
        )
        self.presence = (
            PresencePublisher(
                clients.dynamodb,
                settings.workers_table,
                settings.region,
                settings.worker_id,
                settings.batch_size,
                busy=lambda: self._busy,
                clock=clock,
                **({"interval": presence_interval} if presence_interval else {}),
            )
            if settings.workers_table
            else None
        )
        self.http: HealthServer | None = None

        # Requests from signal handlers: plain attributes, read by the main thread's loop.
        self._stop_requested = False
        self._abort_requested = False
        self._stopping = threading.Event()
        self._lock = threading.Condition()
        self._handoff: list[list[Item]] = []
        self._slot = threading.Semaphore(settings.prefetch_batches)
        self._runner_busy = False
        self._pending_settles = 0
        self._leases: dict[str, Lease] = {}
        self._zombies: dict[str, Lease] = {}
        self._stuck_since: float | None = None
        self._busy: int = 0
        self._predict_deadline = 0.0
        self._loaded = False
        self._failure: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._heartbeat_stop = threading.Event()
        self.metrics.in_flight.set_function(lambda: len(self.held))

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
        self._resolve_dead_letter_queue()
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

    def _resolve_dead_letter_queue(self) -> None:
        url = self._dead_letter_url
        if not url:
            try:
                url = self.queue.redrive_target_url()
            except AWS_ERRORS as exc:
                logger.warning("could not read the queue's redrive policy: %s", one_line(exc))
        if url:
            self.settler.dead_letters = DeadLetterTarget(url, self._clients.sqs)
        else:
            logger.warning(
                "no dead-letter queue (--dead-letter-queue-url, or a redrive policy): failed "
                "requests are recorded FAILED and deleted"
            )

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
                self._hand_back(batch, "received while stopping", after_stop=True)
                continue
            runnable = self._prepare(batch)
            with self._lock:
                if runnable and not self._stopping.is_set():
                    self._handoff.append(runnable)
                    self._lock.notify_all()
                    continue
            self._slot.release()
            if runnable:  # the stop began while the batch was being claimed
                self._hand_back_unstarted(runnable, "received while stopping")

    def _prepare(self, batch: list[Held]) -> list[Item]:
        """Claim a gathered batch while the model runs the previous one (so the model never
        waits for DynamoDB, which is a cross-region round trip for most workers). Returns
        the requests to run; the others (duplicates, expired, held elsewhere, invalid) go
        straight to the settler."""
        items = [
            parse_item(held, self.settings.region, self.settings.request_ttl_seconds)
            for held in batch
        ]
        leaders = group_copies(items)
        now = self._clock()
        outcomes: list[Outcome] = []
        to_expire: list[Item] = []
        to_claim: list[Item] = []
        for item in leaders:
            if isinstance(item.invalid, InvalidRequestError):
                outcomes.append(
                    Outcome(
                        item,
                        Action.DEAD_LETTER,
                        code=str(item.invalid.code),
                        message=str(item.invalid),
                    )
                )
            elif item.invalid is None and item.deadline_at is not None and now > item.deadline_at:
                to_expire.append(item)
            else:
                to_claim.append(item)
        for item, claim in zip(to_expire, self._in_parallel(self._expire, to_expire), strict=True):
            outcomes.append(self._after_expire(item, claim))
        runnable: list[Item] = []
        lease_seconds = self._claim_lease_seconds()
        claims = self._in_parallel(lambda item: self._claim(item, lease_seconds), to_claim)
        for item, claim in zip(to_claim, claims, strict=True):
            outcome = self._after_claim(item, claim)
            if outcome is None:
                runnable.append(item)
            else:
                outcomes.append(outcome)
        if outcomes:
            self._settle(outcomes)
        return runnable

    def _claim_lease_seconds(self) -> float:
        """A batch claimed ahead waits at most for the running predict and each batch
        already waiting before it to return or time out: its lease covers that wait, so it
        never needs renewing when it starts."""
        running_until = self._predict_deadline
        wait = max(running_until - self._monotonic(), 0.0) if running_until else 0.0
        with self._lock:
            ahead = len(self._handoff)
        return self.lease_seconds + wait + ahead * self.settings.invocation_timeout

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
                self._wait_for_settling()
                runnable = self._ensure_leases(items)
                if runnable:
                    self._settle(self._predict(runnable))
            finally:
                with self._lock:
                    self._runner_busy = False
                    self._lock.notify_all()
            self._wait_while_stuck()

    def _wait_for_settling(self) -> None:
        """Back-pressure: when settling falls behind (a slow table, S3, the DLQ), the model
        waits rather than pile up finished batches that are still held."""
        with self._lock:
            while self._pending_settles > MAX_PENDING_SETTLES and not self._closed.is_set():
                self._lock.wait(0.2)

    def _ensure_leases(self, items: list[Item]) -> list[Item]:
        """Renew the leases that would end before the predict could time out (a batch that
        waited longer than its lease allowed for); drop those another worker took over."""
        soon = self._clock() + self.settings.invocation_timeout + 1
        due = [item for item in items if item.lease is not None and item.lease.expires_at < soon]
        lost: list[Outcome] = []

        def renew(item: Item) -> None:
            assert item.lease is not None
            try:
                item.lease = self.ledger.renew(item.lease, self.lease_seconds)
                self.metrics.lease_renewals.inc()
            except FencedError:
                lost.append(Outcome(item, Action.FORGET))
            except AWS_ERRORS as exc:  # run it anyway: the lease still has time
                logger.warning("lease renewal of %s failed: %s", item.request_id, one_line(exc))

        for future in [self._io.submit(renew, item) for item in due]:
            future.result()
        if lost:
            self._settle(lost)
        gone = {id(outcome.item) for outcome in lost}
        return [item for item in items if id(item) not in gone]

    def _hand_back_unstarted(self, items: list[Item], why: str) -> None:
        """Claimed but never started: end the leases (the attempt does not count), then
        make the messages visible at once."""
        self._release_all(
            [item.lease for item in items if item.lease is not None], grace=0.0, refund=True
        )
        self._hand_back(
            [held for item in items for held in (item.held, *(f.held for f in item.followers))],
            why,
        )

    def _expire(self, item: Item) -> ClaimOutcome:
        assert item.new_record is not None
        return self.ledger.expire(item.new_record, "older than its deadline when a worker got it")

    def _claim(self, item: Item, lease_seconds: float) -> ClaimOutcome:
        assert item.new_record is not None
        return self.ledger.claim(item.new_record, lease_seconds)

    def _after_expire(self, item: Item, claim: ClaimOutcome) -> Outcome:
        item.claim = claim
        if claim.kind is ClaimKind.CLAIMED:
            return Outcome(
                item,
                Action.DELETE,
                code=str(FailureCode.REQUEST_EXPIRED),
                record=claim.record,
                label="expired",
            )
        return self._refused(item, claim)

    def _after_claim(self, item: Item, claim: ClaimOutcome) -> Outcome | None:
        """None: the item is ours to run; otherwise what to do with it instead."""
        item.claim = claim
        if claim.kind is not ClaimKind.CLAIMED or claim.lease is None:
            return self._refused(item, claim)
        item.lease = claim.lease
        with self._lock:
            self._leases[item.held.receipt_handle] = claim.lease
        if isinstance(item.invalid, PermanentError):
            return Outcome(item, Action.FAIL, code=item.invalid.code, message=item.invalid.message)
        if claim.lease.attempt > self.settings.max_attempts:
            return Outcome(
                item,
                Action.FAIL,
                code=str(FailureCode.ATTEMPTS_EXHAUSTED),
                message=f"claimed {claim.lease.attempt} times without a result "
                f"(--max-attempts {self.settings.max_attempts}): earlier workers died running it",
            )
        return None

    def _refused(self, item: Item, claim: ClaimOutcome) -> Outcome:
        if claim.kind is ClaimKind.FINISHED:
            return Outcome(item, Action.DELETE)
        if claim.kind is ClaimKind.HELD:
            delay = min(math.ceil(claim.retry_after), 43_200)
            return Outcome(item, Action.DEFER, delay=delay)
        logger.warning(
            "claim of %s failed: %s",
            item.request_id,
            claim.error,
            extra={"request_id": item.request_id},
        )
        self.metrics.aws_errors.labels("dynamodb.claim").inc()
        return Outcome(item, Action.DEFER, delay=UNCLAIMED_RETRY_SECONDS, label="unclaimed")

    def _predict(self, items: list[Item]) -> list[Outcome]:
        requests = [item.as_request(self.reader) for item in items]
        started = self._monotonic()
        now = self._clock()
        for item in items:
            item.held.stop_extending_at = started + self.settings.invocation_timeout
            if item.entered_queue_at:
                wait = max(now - item.entered_queue_at, 0.0)
                self.metrics.queue_wait.labels(item.held.lane).observe(wait)
        self._busy = len(items)
        self.metrics.running.set(len(items))
        self.metrics.batches.inc()
        self.metrics.batch_size.observe(len(items))
        deadline = started + self.settings.invocation_timeout
        self._predict_deadline = deadline
        future = self._model_thread.submit(self.model.predict, requests)
        try:
            while not future.done() and self._monotonic() < deadline:
                if self._closed.is_set():
                    return []  # the shutdown handed the batch back
                future_wait(future, min(_TICK * 4, max(deadline - self._monotonic(), 0.0)))
        finally:
            self._busy = 0
            self._predict_deadline = 0.0
            self.metrics.running.set(0)
        if not future.done():
            return self._timed_out(items, future)
        self.metrics.processing.observe(self._monotonic() - started)
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
        still busy, so the leases of those that will be retried are kept (and renewed by the
        heartbeat) until it returns — no other worker may run them meanwhile."""
        message = f"predict did not return within {self.settings.invocation_timeout:g} s"
        logger.error(message, extra={"request_ids": [i.request_id for i in items]})
        outcomes = [
            self._failed_attempt(
                item, str(FailureCode.INVOCATION_TIMEOUT), message, retryable=True, keep_lease=True
            )
            for item in items
        ]
        with self._lock:
            self._stuck_since = self._monotonic()
            for outcome in outcomes:
                if outcome.action is Action.RETRY and outcome.item.lease is not None:
                    self._zombies[outcome.item.lease.request_id] = outcome.item.lease
        future.add_done_callback(lambda _f: self._unstuck())
        return outcomes

    def _unstuck(self) -> None:
        with self._lock:
            zombies = list(self._zombies.values())
            self._zombies.clear()
            self._stuck_since = None
        logger.warning("the overrunning predict returned; its leases are released")
        self._release_all(zombies, grace=0.0)

    def _wait_while_stuck(self) -> None:
        if self._stuck_since is None:
            return
        # The model thread is busy: hand back the batch gathered ahead, and receive nothing
        # until the predict returns (the receiver checks `_stuck_since`).
        with self._lock:
            waiting, self._handoff = self._handoff, []
        for items in waiting:
            self._slot.release()
            self._hand_back_unstarted(items, "the model is busy with an overrunning predict")
        while self._stuck_since is not None and not self._stopping.is_set():
            time.sleep(_TICK)

    def _settle(self, outcomes: list[Outcome]) -> None:
        """Hand outcomes to the settler thread; none once an abort has closed the worker (it
        handed every message back and released the leases: a predict that returned just then
        runs again elsewhere, as an abort allows)."""
        with self._lock:
            if self._closed.is_set():
                return
            self._pending_settles += 1

        def job() -> None:
            try:
                self.settler.settle(outcomes)
            except Exception as exc:
                self._fail(exc)
            finally:
                with self._lock:
                    self._pending_settles -= 1
                    self._lock.notify_all()

        try:
            self._settle_thread.submit(job)
        except RuntimeError:  # the pool shut down since the check above: closed, as above
            if not self._closed.is_set():
                raise
            with self._lock:
                self._pending_settles -= 1

    def _forget_lease(self, held: Held) -> None:
        with self._lock:
            self._leases.pop(held.receipt_handle, None)

    def _in_parallel(
        self, fn: Callable[[Item], ClaimOutcome], items: list[Item]
    ) -> list[ClaimOutcome]:
        if len(items) <= 1:
            return [fn(item) for item in items]
        return [f.result() for f in [self._io.submit(fn, item) for item in items]]

    # -- heartbeat ---------------------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while not self._heartbeat_stop.wait(self.heartbeat.interval):
            self.heartbeat.beat()
            self._renew_zombies()

    def _renew_zombies(self) -> None:
        with self._lock:
            zombies = list(self._zombies.values())
        soon = self._clock() + 2 * self.heartbeat.interval + LEASE_RESERVE_SECONDS
        for lease in zombies:
            if lease.expires_at > soon:
                continue
            try:
                renewed = self.ledger.renew(lease, self.lease_seconds)
            except FencedError:
                renewed = None
            except AWS_ERRORS as exc:
                logger.warning("lease renewal of %s failed: %s", lease.request_id, one_line(exc))
                continue
            self.metrics.lease_renewals.inc()
            with self._lock:
                if lease.request_id in self._zombies:
                    if renewed is None:
                        del self._zombies[lease.request_id]
                    else:
                        self._zombies[lease.request_id] = renewed

    # -- stopping ----------------------------------------------------------------------------------
    def _idle(self) -> bool:
        with self._lock:
            busy = self._runner_busy or self._pending_settles > 0
        receiving = any(t.is_alive() for t in self._threads if t.name == "worker-receiver")
        return not busy and not receiving

    def _stop_receiving(self) -> None:
        """Steps 1 and 2: stop receiving; hand back every received-but-unstarted batch."""
        with self._lock:
            self._stopping.set()
            unstarted, self._handoff = self._handoff, []
            self._lock.notify_all()
        for items in unstarted:
            self._hand_back_unstarted(items, "received but not started")

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
            leases = [
                self._leases[h.receipt_handle] for h in held if h.receipt_handle in self._leases
            ]
            zombies = list(self._zombies.values())
            self._zombies.clear()
        self._release_all(leases + zombies, grace=RELEASE_GRACE_SECONDS, refund=True)
        self._hand_back(held, "shutdown")

    def _release_all(self, leases: list[Lease], *, grace: float, refund: bool = False) -> None:
        def release(lease: Lease) -> None:
            try:
                self.ledger.release(lease, grace=grace, refund_attempt=refund)
            except FencedError:
                pass  # final already, or someone else's now
            except AWS_ERRORS as exc:
                logger.warning(
                    "lease of %s not released (it runs out by itself): %s",
                    lease.request_id,
                    one_line(exc),
                )

        for future in [self._io.submit(release, lease) for lease in leases]:
            future.result()

    def _hand_back(self, batch: Sequence[Held], why: str, *, after_stop: bool = False) -> None:
        """Make the messages visible again at once. `after_stop`: a poll that was open when the
        stop began brought them; one already received before (most likely handed back by
        another stopping worker) is parked until every poll open at its stop has ended, so
        the stopping workers of a draining region do not pass it around, each receive
        counting toward the queue's maxReceiveCount."""
        if not batch:
            return
        park = self.gatherer.poll_seconds + 1
        delays = [(h, park if after_stop and receive_count(h) > 1 else 0) for h in batch]
        self.held.release(batch)  # first: no heartbeat may re-hide them after the change
        failures = self.lanes.change_visibility(delays)
        for failed in failures:
            logger.warning("hand-back failed (visible again after the timeout): %s", failed.reason)
        for held in batch:
            self._forget_lease(held)
        self.metrics.requests.labels("handed_back").inc(len(batch))
        logger.info(
            "handed back %d messages (%s)",
            len(batch),
            why,
            extra={
                "request_ids": [request_id_of(h) for h in batch],
                "reason": why,
                "lanes": dict(Counter(h.lane for h in batch)),
                "parked": sum(1 for _, delay in delays if delay),
            },
        )

    def _release_zombies(self) -> None:
        with self._lock:
            zombies = list(self._zombies.values())
            self._zombies.clear()
        self._release_all(zombies, grace=RELEASE_GRACE_SECONDS)

    def _finish(self) -> None:
        """Last: heartbeats stop, the presence item goes, the HTTP port closes."""
        self._release_zombies()
        self._heartbeat_stop.set()
        if self.presence is not None:
            self.presence.withdraw()
        if self.http is not None:
            self.http.stop()
        # The I/O pool stays usable: a receiver finishing its claims as the process stops
        # still hands them back. Its idle threads end with the interpreter.
        for pool in (self._settle_thread, self._notify_pool):
            pool.shutdown(wait=False, cancel_futures=True)
        self._model_thread.shutdown()

    def _sleep_unless_aborted(self, seconds: float) -> None:
        self._stopping.wait(seconds)


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


def request_id_of(held: Held) -> str | None:
    """For logs: the routing attribute, else whatever the body says."""
    attributes = held.message.get("MessageAttributes") or {}
    value = (attributes.get("request_id") or {}).get("StringValue")
    return str(value) if value else readable_request_id(str(held.message.get("Body", "")))


def receive_count(held: Held) -> int:
    """SQS's ApproximateReceiveCount of the message (1 on its first receive)."""
    attributes = held.message.get("Attributes") or {}
    try:
        return int(attributes.get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1


def future_wait(future: Future[Any], seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        future.exception(timeout=seconds)


def build_clients(session: Any, settings: WorkerSettings) -> Clients:
    """The worker's clients from a boto3 session: SQS and S3 in the queue's region, DynamoDB
    in the table's, SNS per topic region on first use. botocore reads ``AWS_ENDPOINT_URL``
    and ``AWS_ENDPOINT_URL_<SERVICE>`` itself."""
    return Clients(
        sqs=session.client("sqs", region_name=settings.region, config=SQS_CONFIG),
        dynamodb=session.client(
            "dynamodb", region_name=settings.table_region, config=DYNAMODB_CONFIG
        ),
        s3=session.client("s3", region_name=settings.region, config=S3_CONFIG),
        sns_for_region=lambda region: session.client("sns", region_name=region, config=SNS_CONFIG),
    )
