"""What happened to each record of a batch: the distributor's answer, read by the handler,
the local invoker and the tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class Disposition(StrEnum):
    FORWARDED = "forwarded"
    """In a region queue; acknowledged."""
    DUPLICATE = "duplicate"
    """Same request id and payload as a request already claimed; acknowledged, not forwarded."""
    DEAD_LETTERED = "dead_lettered"
    """Malformed or a payload conflict; in the dead-letter queue with its reason; acknowledged."""
    FAILED = "failed"
    """Not done; reported in batchItemFailures so SQS delivers it again."""


class FailureReason(StrEnum):
    """Why a record was handed back to SQS (Disposition.FAILED): every cause is retryable."""

    IN_PROGRESS = "IN_PROGRESS"
    """Another invocation holds the same master message right now (its claim lease)."""
    NO_ELIGIBLE_REGION = "NO_ELIGIBLE_REGION"
    """Every region the request may run in is cooling down or at MAX_QUEUE_DEPTH_THRESHOLD."""
    LEDGER_UNAVAILABLE = "LEDGER_UNAVAILABLE"
    """The DynamoDB claim failed (throttled, unreachable)."""
    FORWARD_FAILED = "FORWARD_FAILED"
    """The region queue refused the message, and so did the retry in another region."""
    DEAD_LETTER_FAILED = "DEAD_LETTER_FAILED"
    """A malformed message could not be put on the dead-letter queue."""
    DEFECT = "DEFECT"
    """A programming error inside the batch: every record is handed back (logged with its
    traceback), so nothing is lost while the bug is fixed."""


@dataclass(frozen=True, slots=True)
class Outcome:
    message_id: str
    disposition: Disposition
    request_id: str | None = None
    region: str | None = None
    attempt: int | None = None
    reason: str | None = None
    """The `ErrorCode` for dead letters, the `FailureReason` for failures."""
    detail: str | None = None
    high_priority: bool = False
    """Forwarded to the region's high-priority queue."""


@dataclass(slots=True)
class BatchReport:
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.outcomes[outcome.message_id] = outcome

    def with_disposition(self, disposition: Disposition) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.disposition is disposition]

    @property
    def failed_message_ids(self) -> list[str]:
        return [o.message_id for o in self.with_disposition(Disposition.FAILED)]

    def forwarded_per_region(self) -> Counter[str]:
        return Counter(o.region for o in self.with_disposition(Disposition.FORWARDED) if o.region)

    def counts(self) -> Counter[str]:
        return Counter(o.disposition.value for o in self.outcomes.values())
