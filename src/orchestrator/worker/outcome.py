"""What happens to each message of a batch, decided before any of it is written.

`classify` turns one model result (a value, or an exception instance) into an `Outcome`;
the settler (`orchestrator.worker.settle`) then carries every outcome out with as few AWS
calls as it can.

Retries back off exponentially with "equal jitter": the n-th attempt waits between half and
all of ``min(RETRY_CAP, RETRY_BASE · 2^(n-1))`` seconds, so retries of a batch that failed
together spread out instead of coming back together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orchestrator.core.record import RequestRecord
from orchestrator.worker.batch import Item
from orchestrator.worker.exceptions import FailureCode, InferenceError
from orchestrator.worker.results import StoredResult

RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 300.0


class Action(StrEnum):
    SUCCEED = "succeed"
    """Store the result, write SUCCEEDED, delete, notify."""
    FAIL = "fail"
    """Dead-letter, write FAILED, delete, notify."""
    RETRY = "retry"
    """End our lease, hand the message back after a backoff."""
    DELETE = "delete"
    """Already final (a duplicate copy), or just written EXPIRED: delete (and notify)."""
    DEFER = "defer"
    """Someone else holds it, or the table was unreachable: back after `delay`, no write."""
    DEAD_LETTER = "dead_letter"
    """Not a valid request at all (no record): dead-letter and delete."""
    FORGET = "forget"
    """Our lease was taken over: leave the message alone, its new owner settles it."""


@dataclass(eq=False)
class Outcome:
    item: Item
    action: Action
    value: Any = None
    """SUCCEED: what the model returned."""
    code: str = ""
    message: str = ""
    delay: int = 0
    """RETRY / DEFER: seconds until the message is visible again."""
    record: RequestRecord | None = None
    """The record to notify about once final."""
    stored: StoredResult | None = None
    keep_lease: bool = False
    """RETRY of a timed-out request whose predict is still running: the lease is kept (and
    renewed) until the predict returns, so it never runs twice at once."""
    label: str = ""
    """The ``worker_requests`` outcome label."""


def backoff_seconds(
    attempt: int,
    rng: random.Random,
    base: float = RETRY_BASE_SECONDS,
    cap: float = RETRY_CAP_SECONDS,
) -> int:
    """Delay before attempt ``attempt + 1`` (module docstring), whole seconds for SQS."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return round(rng.uniform(ceiling / 2, ceiling))


def failure(
    item: Item,
    code: str,
    message: str,
    *,
    retryable: bool,
    max_attempts: int,
    rng: random.Random,
    retry_base: float = RETRY_BASE_SECONDS,
    keep_lease: bool = False,
) -> Outcome:
    """A failed attempt: RETRY with backoff, or FAIL when permanent or out of attempts."""
    attempt = item.lease.attempt if item.lease is not None else 1
    if retryable and attempt < max_attempts:
        delay = backoff_seconds(attempt, rng, retry_base)
        return Outcome(
            item, Action.RETRY, code=code, message=message, delay=delay, keep_lease=keep_lease
        )
    if retryable:
        message = f"{message} (attempt {attempt} of {max_attempts})"
    return Outcome(item, Action.FAIL, code=code, message=message)


def classify(
    item: Item, result: Any, *, max_attempts: int, rng: random.Random, retry_base: float
) -> Outcome:
    """One model result: a value succeeds; an exception instance fails only this request."""
    if isinstance(result, BaseException):
        code, message, retryable = describe(result)
        return failure(
            item,
            code,
            message,
            retryable=retryable,
            max_attempts=max_attempts,
            rng=rng,
            retry_base=retry_base,
        )
    return Outcome(item, Action.SUCCEED, value=result)


def describe(exc: BaseException) -> tuple[str, str, bool]:
    """(error code, message, retryable) of an exception raised or returned by a model."""
    if isinstance(exc, InferenceError):
        return exc.code, exc.message, exc.retryable
    return str(FailureCode.MODEL_ERROR), f"{type(exc).__name__}: {exc}", True
