"""Claiming a gathered batch ahead of the model, and keeping its leases until it starts.

The receiver claims each batch while the model runs the previous one, so the model never waits
for DynamoDB, which is a cross-region round trip for most workers: one conditional write per
request (copies of a request in the batch follow their leader), all in parallel. What is not
ours to run goes straight to the settler instead: a request that breaks the contract is
dead-lettered, one older than its deadline is recorded expired, one already finished is
deleted, one held by another worker is deferred until that lease ends, and one whose claim
could not be written comes back after `UNCLAIMED_RETRY_SECONDS`. A request with an invalid
deadline (`PermanentError`), or claimed more than ``--max-attempts`` times (earlier workers
died running it), is claimed and fails.

A batch claimed ahead waits at most for the running predict and for each batch already
waiting before it to return or time out: its lease covers that wait on top of the worker's
lease (`Claimer` is told the running predict's deadline and how many batches wait), so it
never needs renewing when it starts. A batch that waited longer anyway has the leases that
would end before its predict could time out renewed just before it runs
(`Claimer.ensure_leases`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor

from orchestrator.core.errors import AWS_ERRORS, one_line
from orchestrator.core.request import InvalidRequestError
from orchestrator.worker.batch import Item, group_copies, parse_item
from orchestrator.worker.config import MAX_VISIBILITY_TIMEOUT, WorkerSettings
from orchestrator.worker.exceptions import FailureCode, PermanentError
from orchestrator.worker.metrics import WorkerMetrics
from orchestrator.worker.outcome import Action, Outcome
from orchestrator.worker.queue import Held
from orchestrator.worker.records import ClaimKind, ClaimOutcome, FencedError, Lease, RunLedger

logger = logging.getLogger(__name__)

UNCLAIMED_RETRY_SECONDS = 5
"""A message whose claim could not be written (table unreachable) comes back after this."""


class Claimer:
    """Claims batches for the worker (module docstring); the worker owns the leases it keeps
    (`keep_lease`) and settles what is not run (`settle`)."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        ledger: RunLedger,
        metrics: WorkerMetrics,
        io: Executor,
        lease_seconds: float,
        predict_deadline: Callable[[], float],
        batches_ahead: Callable[[], int],
        keep_lease: Callable[[Held, Lease], None],
        settle: Callable[[list[Outcome]], None],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.metrics = metrics
        self._io = io
        self.lease_seconds = lease_seconds
        # The running predict's deadline (monotonic; 0.0 when none runs), and how many
        # claimed batches are already waiting for the model.
        self._predict_deadline = predict_deadline
        self._batches_ahead = batches_ahead
        self._keep_lease = keep_lease
        self._settle = settle
        self._clock = clock
        self._monotonic = monotonic

    def prepare(self, batch: list[Held]) -> list[Item]:
        """Claim a gathered batch. Returns the requests to run; the others (duplicates,
        expired, held elsewhere, invalid) go straight to the settler."""
        items = [
            parse_item(held, self.settings.region, self.settings.request_ttl_seconds)
            for held in batch
        ]
        outcomes, to_expire, to_claim = self._triage(group_copies(items))
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

    def _triage(self, leaders: list[Item]) -> tuple[list[Outcome], list[Item], list[Item]]:
        """The invalid requests' outcomes, the requests to expire, the requests to claim."""
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
        return outcomes, to_expire, to_claim

    def _claim_lease_seconds(self) -> float:
        """A batch claimed ahead waits at most for the running predict and each batch
        already waiting before it to return or time out: its lease covers that wait, so it
        never needs renewing when it starts."""
        running_until = self._predict_deadline()
        wait = max(running_until - self._monotonic(), 0.0) if running_until else 0.0
        ahead = self._batches_ahead()
        return self.lease_seconds + wait + ahead * self.settings.invocation_timeout

    def ensure_leases(self, items: list[Item]) -> list[Item]:
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
        self._keep_lease(item.held, claim.lease)
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
            delay = min(math.ceil(claim.retry_after), MAX_VISIBILITY_TIMEOUT)
            return Outcome(item, Action.DEFER, delay=delay)
        logger.warning(
            "claim of %s failed: %s",
            item.request_id,
            claim.error,
            extra={"request_id": item.request_id},
        )
        self.metrics.aws_errors.labels("dynamodb.claim").inc()
        return Outcome(item, Action.DEFER, delay=UNCLAIMED_RETRY_SECONDS, label="unclaimed")

    def _in_parallel(
        self, fn: Callable[[Item], ClaimOutcome], items: list[Item]
    ) -> list[ClaimOutcome]:
        if len(items) <= 1:
            return [fn(item) for item in items]
        return [f.result() for f in [self._io.submit(fn, item) for item in items]]
