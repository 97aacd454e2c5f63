"""Carrying out a batch's outcomes: results, records, dead letters, the queue, notifications.

Order, and why:

1. **results** of successes are placed (inline, or uploaded to S3, all uploads in parallel);
2. **leases** that are about to run out are renewed first (only a batch that outlived its
   lease: never on the happy path), so no result is written by a worker that lost its claim;
3. **dead letters** are sent before the FAILED write: a dead letter may be sent twice (a
   crash right after it), never lost; a dead letter that cannot be sent turns the failure
   back into a retry;
4. **final writes**, one conditional UpdateItem each, all in parallel (DynamoDB has no
   conditional batch write, and a transaction would fail as a whole). A refused write means
   another worker holds a newer claim: the message is left to it;
5. **releases** of retried requests' leases (failure path only), in parallel;
6. **the queue**: one DeleteMessageBatch per 10 finished messages, one
   ChangeMessageVisibilityBatch per 10 retried or deferred ones, per queue (each message goes
   back to the lane it came from) — copies of a request in the same batch share its fate;
7. **notifications**, on their own threads: they never delay or fail a request.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from typing import Any

from orchestrator.core.dead_letter import DeadLetter
from orchestrator.core.errors import AWS_ERRORS, error_code, one_line
from orchestrator.core.record import RequestStatus
from orchestrator.core.sqs import chunks, send_chunk
from orchestrator.worker.exceptions import InferenceError
from orchestrator.worker.lanes import Lanes
from orchestrator.worker.metrics import WorkerMetrics
from orchestrator.worker.notify import Notifier
from orchestrator.worker.outcome import Action, Outcome
from orchestrator.worker.queue import Held, HeldMessages, WorkQueue
from orchestrator.worker.records import FencedError, Lease, RunLedger
from orchestrator.worker.results import ResultStore, encode

logger = logging.getLogger(__name__)

LEASE_RESERVE_SECONDS = 10.0
"""A lease with less than this left is renewed before results are written under it."""
UNRECORDED_RETRY_SECONDS = 5
"""Delay for a message whose record could not be written (the table was unreachable)."""


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetterTarget:
    """The region's dead-letter queue: where failed requests go, with why."""

    url: str
    client: Any


def find_dead_letter_target(
    url: str | None, queue: WorkQueue, client: Any
) -> DeadLetterTarget | None:
    """The dead-letter queue: `url` (``--dead-letter-queue-url``), else the target of the
    queue's redrive policy; None, with a warning, when there is neither."""
    if not url:
        try:
            url = queue.redrive_target_url()
        except AWS_ERRORS as exc:
            logger.warning("could not read the queue's redrive policy: %s", one_line(exc))
    if url:
        return DeadLetterTarget(url, client)
    logger.warning(
        "no dead-letter queue (--dead-letter-queue-url, or a redrive policy): failed "
        "requests are recorded FAILED and deleted"
    )
    return None


_DELETED = (Action.SUCCEED, Action.FAIL, Action.DELETE, Action.DEAD_LETTER)


class Settler:
    def __init__(
        self,
        *,
        ledger: RunLedger,
        queue: Lanes,
        held: HeldMessages,
        results: ResultStore,
        notifier: Notifier,
        dead_letters: DeadLetterTarget | None,
        io: Executor,
        notify_pool: Executor,
        metrics: WorkerMetrics,
        lease_seconds: float,
        forget_lease: Callable[[Held], None],
        closed: threading.Event,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._queue = queue
        self._held = held
        self._results = results
        self._notifier = notifier
        self.dead_letters = dead_letters
        self._io = io
        self._notify_pool = notify_pool
        self._metrics = metrics
        self.lease_seconds = lease_seconds
        self._forget_lease = forget_lease
        self._closed = closed
        self._clock = clock

    def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Carry out `outcomes` (module docstring). After a shutdown handed the messages
        back (`closed`), nothing more is done: the redelivered copies settle themselves."""
        if not outcomes or self._closed.is_set():
            return
        self._place_results(outcomes)
        self._check_leases(outcomes)
        self._send_dead_letters(outcomes)
        self._write_finals(outcomes)
        self._release_retries(outcomes)
        if self._closed.is_set():
            return
        self._apply_to_queue(outcomes)
        self._notify(outcomes)
        self._account(outcomes)

    # -- 1. results -----------------------------------------------------------------------------
    def _place_results(self, outcomes: Sequence[Outcome]) -> None:
        def place(outcome: Outcome) -> None:
            request_id = outcome.item.request_id or ""
            try:
                outcome.stored = self._results.place(request_id, encode(outcome.value))
            except InferenceError as exc:
                outcome.action = Action.RETRY if exc.retryable else Action.FAIL
                outcome.code, outcome.message = exc.code, exc.message
                outcome.delay = UNRECORDED_RETRY_SECONDS

        self._parallel(place, [o for o in outcomes if o.action is Action.SUCCEED])

    # -- 2. leases ------------------------------------------------------------------------------
    def _check_leases(self, outcomes: Sequence[Outcome]) -> None:
        now = self._clock()
        due = [
            o
            for o in outcomes
            if o.action in (Action.SUCCEED, Action.FAIL, Action.RETRY)
            and o.item.lease is not None
            and o.item.lease.expires_at - now < LEASE_RESERVE_SECONDS
            and not o.keep_lease
        ]

        def renew(outcome: Outcome) -> None:
            assert outcome.item.lease is not None
            try:
                outcome.item.lease = self._ledger.renew(outcome.item.lease, self.lease_seconds)
                self._metrics.lease_renewals.inc()
            except FencedError:
                outcome.action = Action.FORGET
            except AWS_ERRORS as exc:
                self._aws_failed("renew", exc, outcome)

        self._parallel(renew, due)

    # -- 3. dead letters ------------------------------------------------------------------------
    def _send_dead_letters(self, outcomes: Sequence[Outcome]) -> None:
        failing = [o for o in outcomes if o.action in (Action.FAIL, Action.DEAD_LETTER)]
        if not failing:
            return
        if self.dead_letters is None:
            for outcome in failing:
                logger.error(
                    "no dead-letter queue: %s failed with %s: %s",
                    outcome.item.request_id,
                    outcome.code,
                    outcome.message,
                    extra={"request_id": outcome.item.request_id, "body": outcome.item.body[:512]},
                )
            return
        letters = {str(i): o for i, o in enumerate(failing)}
        messages = [
            # Keys are positions: copies of one request never collide.
            dataclasses.replace(_letter(o).to_message(), key=key)
            for key, o in letters.items()
        ]
        failures = []
        for chunk in chunks(messages):
            failures += send_chunk(self.dead_letters.client, self.dead_letters.url, chunk)
        for failed in failures:
            outcome = letters[failed.key]
            logger.warning(
                "dead letter for %s not sent: %s",
                outcome.item.request_id,
                failed.reason,
                extra={"request_id": outcome.item.request_id},
            )
            self._metrics.aws_errors.labels("sqs.send_message_batch").inc()
            outcome.action = Action.RETRY if outcome.action is Action.FAIL else Action.DEFER
            outcome.delay = UNRECORDED_RETRY_SECONDS

    # -- 4. final writes ------------------------------------------------------------------------
    def _write_finals(self, outcomes: Sequence[Outcome]) -> None:
        def write(outcome: Outcome) -> None:
            lease = outcome.item.lease
            record = outcome.item.claim.record if outcome.item.claim else None
            if lease is None or record is None:
                return
            succeeded = outcome.action is Action.SUCCEED
            stored = outcome.stored
            fields = {
                "result": stored.inline if succeeded and stored else None,
                "result_location": stored.location if succeeded and stored else None,
                "error_code": None if succeeded else outcome.code,
                "error_message": None if succeeded else outcome.message,
            }
            status = RequestStatus.SUCCEEDED if succeeded else RequestStatus.FAILED
            try:
                finished_at = self._ledger.finish(lease, status, **fields)
            except FencedError:
                logger.warning(
                    "%s: lease lost (fencing token %d), result discarded",
                    lease.request_id,
                    lease.fencing_token,
                    extra={"request_id": lease.request_id},
                )
                outcome.action = Action.FORGET
                return
            except AWS_ERRORS as exc:
                self._aws_failed("finish", exc, outcome, lease)
                return
            outcome.record = dataclasses.replace(
                record, status=status, finished_at=finished_at, **fields
            )

        self._parallel(write, [o for o in outcomes if o.action in (Action.SUCCEED, Action.FAIL)])

    # -- 5. releases ----------------------------------------------------------------------------
    def _release_retries(self, outcomes: Sequence[Outcome]) -> None:
        def release(outcome: Outcome) -> None:
            lease = outcome.item.lease
            if lease is None:
                return
            try:
                self._ledger.release(lease, error_code=outcome.code, error_message=outcome.message)
            except FencedError:
                outcome.action = Action.FORGET
            except AWS_ERRORS as exc:
                # Our lease still holds the record: come back when it has run out.
                self._aws_failed("release", exc, outcome, lease)

        self._parallel(
            release, [o for o in outcomes if o.action is Action.RETRY and not o.keep_lease]
        )

    def _aws_failed(
        self, operation: str, exc: BaseException, outcome: Outcome, lease: Lease | None = None
    ) -> None:
        logger.warning(
            "%s of %s failed: %s; the message comes back later",
            operation,
            outcome.item.request_id,
            one_line(exc),
            extra={"request_id": outcome.item.request_id, "error_code": error_code(exc)},
        )
        self._metrics.aws_errors.labels(f"dynamodb.{operation}").inc()
        remaining = 0.0 if lease is None else max(lease.expires_at - self._clock(), 0.0)
        outcome.action = Action.DEFER
        outcome.delay = max(outcome.delay, UNRECORDED_RETRY_SECONDS, int(remaining) + 1)
        outcome.label = "unrecorded"

    # -- 6. the queue ---------------------------------------------------------------------------
    def _apply_to_queue(self, outcomes: Sequence[Outcome]) -> None:
        deletes: list[Held] = []
        changes: list[tuple[Held, int]] = []
        for outcome in outcomes:
            copies = [outcome.item.held] + [f.held for f in outcome.item.followers]
            if outcome.action in _DELETED:
                deletes += copies
            elif outcome.action in (Action.RETRY, Action.DEFER):
                changes += [(held, outcome.delay) for held in copies]
            else:  # FORGET: our copy belongs to the new owner; other copies come back soon
                changes += [(f.held, UNRECORDED_RETRY_SECONDS) for f in outcome.item.followers]
        settled = deletes + [h for h, _ in changes] + [o.item.held for o in outcomes]
        # Released before the queue calls: a heartbeat must not re-hide a retry for the
        # whole visibility timeout after its backoff was set.
        self._held.release(settled)
        for failure in self._queue.delete(deletes):
            logger.warning("delete failed (the copy comes back as a duplicate): %s", failure.reason)
            self._metrics.aws_errors.labels("sqs.delete_message_batch").inc()
        for failure in self._queue.change_visibility(changes):
            logger.warning("visibility change failed: %s", failure.reason)
            self._metrics.aws_errors.labels("sqs.change_message_visibility_batch").inc()
        for held in settled:
            self._forget_lease(held)

    # -- 7. notifications -----------------------------------------------------------------------
    def _notify(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            record = outcome.record
            if record is None or not record.status.is_final or not record.callback_sns_topic:
                continue
            self._notify_pool.submit(self._notifier.notify, record.callback_sns_topic, record)

    # -- metrics and logs -----------------------------------------------------------------------
    def _account(self, outcomes: Sequence[Outcome]) -> None:
        counts: Counter[str] = Counter()
        lanes: Counter[str] = Counter()
        now = self._clock()
        for outcome in outcomes:
            label = outcome.label or _LABELS[outcome.action]
            if outcome.action is Action.DELETE and outcome.record is not None:
                label = "expired"
            counts[label] += 1 + len(outcome.item.followers)
            lanes[outcome.item.held.lane] += 1
            if outcome.action in (Action.FAIL, Action.RETRY, Action.DEAD_LETTER):
                self._metrics.failures.labels(outcome.code or "UNKNOWN").inc()
                logger.warning(
                    "%s %s: %s: %s",
                    outcome.item.request_id,
                    "retried" if outcome.action is Action.RETRY else "failed",
                    outcome.code,
                    outcome.message,
                    extra={
                        "request_id": outcome.item.request_id,
                        "error_code": outcome.code,
                        "retry_in": outcome.delay if outcome.action is Action.RETRY else None,
                        "lane": outcome.item.held.lane,
                    },
                )
            entered = outcome.item.entered_queue_at
            if outcome.record is not None and outcome.record.status.is_final and entered:
                self._metrics.end_to_end.labels(outcome.item.held.lane).observe(
                    max(now - entered, 0.0)
                )
        for label, count in counts.items():
            self._metrics.requests.labels(label).inc(count)
        finished = counts["succeeded"] + counts["failed"]
        if finished:
            self._metrics.finished(finished, time.monotonic())
        logger.info(
            "batch settled",
            extra={
                "request_ids": [o.item.request_id for o in outcomes],
                "outcomes": dict(counts),
                "lanes": dict(lanes),
            },
        )

    def _parallel(self, fn: Callable[[Outcome], None], outcomes: Iterable[Outcome]) -> None:
        outcomes = list(outcomes)
        if len(outcomes) == 1:
            fn(outcomes[0])
            return
        for future in [self._io.submit(fn, o) for o in outcomes]:
            future.result()  # re-raises a defect in `fn` here, in the settling thread


_LABELS = {
    Action.SUCCEED: "succeeded",
    Action.FAIL: "failed",
    Action.RETRY: "retried",
    Action.DELETE: "duplicate",
    Action.DEFER: "deferred",
    Action.DEAD_LETTER: "dead_lettered",
    Action.FORGET: "fenced",
}


def _letter(outcome: Outcome) -> DeadLetter:
    attributes = outcome.item.held.message.get("MessageAttributes") or {}
    origin = (attributes.get("origin_message_id") or {}).get("StringValue")
    return DeadLetter(
        origin_message_id=str(origin or outcome.item.held.message_id),
        body=outcome.item.body,
        error_code=outcome.code,
        error_message=outcome.message,
        request_id=outcome.item.request_id,
    )
