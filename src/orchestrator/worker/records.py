"""The worker's side of the request record: claim, finish, release and renew, each one
conditional write (`orchestrator.core.record` has the state machine).

- **claim**: ``FORWARDED → RUNNING``, or ``RUNNING`` whose lease has run out (its worker died)
  → ``RUNNING`` again; sets worker_id, started_at, the run lease, and increments `attempt` and
  `fencing_token`. A request with no record (put straight on a region queue, or its record
  already removed by TTL) is created as ``RUNNING`` in the same write
  (``attribute_not_exists``), with the fields the distributor would have written.
  A refused claim returns the existing record (``ReturnValuesOnConditionCheckFailure``), so
  the worker learns why without a second read: already final, or held by a live lease.
- **expire**: the same condition, straight to ``EXPIRED`` (a request past its deadline is
  never claimed).
- **finish**: ``RUNNING → SUCCEEDED | FAILED``, only while the fencing token is still ours, so
  a worker that lost its lease can never overwrite a newer attempt.
- **release**: a retryable failure or a hand-back ends our lease early (the request stays
  ``RUNNING``; the next claim takes it with a new token). Failure paths only.
- **renew**: moves our lease on; only for a batch that outlives its lease (module
  `orchestrator.worker.runtime` explains when), never per heartbeat.

The happy path is two writes per request: the claim and the finish.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import (
    AWS_ERRORS,
    error_code,
    is_conditional_check_failure,
    one_line,
)
from orchestrator.core.record import RequestRecord, RequestStatus
from orchestrator.core.timefmt import iso_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

_CLAIMABLE = (
    "attribute_not_exists(request_id) OR #status = :forwarded "
    "OR (#status = :running AND run_lease_expires_at < :now)"
)
_OURS = "#status = :running AND fencing_token = :token"
MAX_ERROR_MESSAGE_CHARS = 1_024


class ClaimKind(StrEnum):
    CLAIMED = "claimed"
    """Ours now (for `expire`: written as EXPIRED)."""
    FINISHED = "finished"
    """Already SUCCEEDED, FAILED or EXPIRED: a duplicate copy, delete it."""
    HELD = "held"
    """Another live lease holds it: put it back with a delay, never run it concurrently."""
    UNAVAILABLE = "unavailable"
    """The table could not be written (AWS failure): hand the message back, retry later."""


@dataclass(frozen=True, slots=True)
class NewRecord:
    """What a worker knows of a request from its message: enough to create the record."""

    request_id: str
    message_id: str
    payload_hash: str
    region: str
    priority: str
    model_name: str
    forwarded_at: str
    queued_at: str | None = None
    callback_sns_topic: str | None = None
    deadline_at: int | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """A claim this worker holds: the final write is conditional on `fencing_token`."""

    request_id: str
    fencing_token: int
    attempt: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    kind: ClaimKind
    record: RequestRecord | None = None
    lease: Lease | None = None
    retry_after: float = 0.0
    """HELD: seconds until the other lease runs out."""
    error: str = ""


class RunLedger:
    """Conditional writes on the request records (module docstring)."""

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        worker_id: str,
        *,
        ttl_days: int = 7,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self._client = client
        self.worker_id = worker_id
        self._ttl_seconds = ttl_days * 86_400
        self._clock = clock

    # -- taking a request ----------------------------------------------------------------------
    def claim(self, new: NewRecord, lease_seconds: float) -> ClaimOutcome:
        now = self._clock()
        until = math.ceil(now + lease_seconds)
        outcome = self._conditional_create(
            new,
            now,
            "#status = :running, worker_id = :worker, started_at = :at, "
            "run_lease_expires_at = :until, "
            "fencing_token = if_not_exists(fencing_token, :zero) + :one, "
            "attempt = if_not_exists(attempt, :zero) + :one",
            {":worker": {"S": self.worker_id}, ":until": {"N": str(until)}},
        )
        if outcome.kind is not ClaimKind.CLAIMED or outcome.record is None:
            return outcome
        record = outcome.record
        lease = Lease(record.request_id, record.fencing_token, record.attempt, float(until))
        return ClaimOutcome(ClaimKind.CLAIMED, record, lease)

    def expire(self, new: NewRecord, message: str) -> ClaimOutcome:
        """Mark a request past its deadline EXPIRED without running it."""
        now = self._clock()
        return self._conditional_create(
            new,
            now,
            "#status = :expired, finished_at = :at, error_code = :code, error_message = :msg",
            {
                ":expired": {"S": RequestStatus.EXPIRED.value},
                ":code": {"S": "REQUEST_EXPIRED"},
                ":msg": {"S": message[:MAX_ERROR_MESSAGE_CHARS]},
            },
        )

    def _conditional_create(
        self, new: NewRecord, now: float, assignments: str, values: Mapping[str, Any]
    ) -> ClaimOutcome:
        creation = _creation_fields(new, int(now) + self._ttl_seconds)
        update = (
            "SET "
            + assignments
            + "".join(
                f", {name} = if_not_exists({name}, :new_{key})" for key, name in creation.names()
            )
        )
        attribute_values: dict[str, Any] = {
            ":forwarded": {"S": RequestStatus.FORWARDED.value},
            ":running": {"S": RequestStatus.RUNNING.value},
            ":now": {"N": str(int(now))},
            ":at": {"S": iso_utc(now)},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            **values,
            **creation.values(),
        }
        names, used_values = _used(
            update, _CLAIMABLE, {"#status": "status", "#region": "region"}, attribute_values
        )
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key={"request_id": {"S": new.request_id}},
                UpdateExpression=update,
                ConditionExpression=_CLAIMABLE,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=used_values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except AWS_ERRORS as exc:
            if not is_conditional_check_failure(exc):
                return ClaimOutcome(
                    ClaimKind.UNAVAILABLE, error=f"{error_code(exc)}: {one_line(exc)}"
                )
            old = dict(exc.response.get("Item") or {})  # type: ignore[attr-defined,unused-ignore]
            return self._refused(old, now)
        return ClaimOutcome(ClaimKind.CLAIMED, RequestRecord.from_item(response["Attributes"]))

    @staticmethod
    def _refused(old: Mapping[str, Any], now: float) -> ClaimOutcome:
        if not old:  # deleted between the condition and the answer: try again shortly
            return ClaimOutcome(ClaimKind.HELD, retry_after=1.0)
        record = RequestRecord.from_item(old)
        if record.status.is_final:
            return ClaimOutcome(ClaimKind.FINISHED, record)
        lease_end = record.run_lease_expires_at or 0
        return ClaimOutcome(ClaimKind.HELD, record, retry_after=max(lease_end - now, 0.0) + 1.0)

    # -- while and after running ---------------------------------------------------------------
    def finish(
        self,
        lease: Lease,
        status: RequestStatus,
        *,
        result: str | None = None,
        result_location: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> str:
        """Write the final status; returns its ``finished_at``. Raises `FencedError` when
        the fencing token is no longer ours, and `AWS_ERRORS` when the table fails."""
        if not status.is_final:
            raise ValueError(f"{status} is not a final status")
        now = self._clock()
        finished_at = iso_utc(now)
        fields: dict[str, str | None] = {
            "result": result,
            "result_location": result_location,
            "error_code": error_code,
            "error_message": None
            if error_message is None
            else error_message[:MAX_ERROR_MESSAGE_CHARS],
        }
        sets = ["#status = :final", "finished_at = :at"]
        values: dict[str, Any] = {
            ":final": {"S": status.value},
            ":at": {"S": finished_at},
        }
        removes = []
        for name, value in fields.items():
            if value is None:
                removes.append(name)
            else:
                sets.append(f"#{name} = :{name}")
                values[f":{name}"] = {"S": value}
        update = "SET " + ", ".join(sets)
        if removes:
            update += " REMOVE " + ", ".join(f"#{name}" for name in removes)
        self._conditional(lease, update, values, {f"#{name}": name for name in fields})
        return finished_at

    def release(
        self,
        lease: Lease,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        grace: float = 0.0,
        refund_attempt: bool = False,
    ) -> None:
        """End our lease now (+ `grace`): the next claim may take the request. A refunded
        attempt (a hand-back on shutdown) does not count against ``--max-attempts``."""
        # Without grace, one second in the past: the claim condition is a strict "<".
        until = math.ceil(self._clock() + grace) if grace else math.floor(self._clock()) - 1
        sets = ["run_lease_expires_at = :until"]
        values: dict[str, Any] = {":until": {"N": str(until)}}
        if error_code is not None:
            sets += ["error_code = :code", "error_message = :msg"]
            values[":code"] = {"S": error_code}
            values[":msg"] = {"S": (error_message or "")[:MAX_ERROR_MESSAGE_CHARS]}
        if refund_attempt and lease.attempt > 0:
            sets.append("attempt = :previous")
            values[":previous"] = {"N": str(lease.attempt - 1)}
        self._conditional(lease, "SET " + ", ".join(sets), values)

    def renew(self, lease: Lease, lease_seconds: float) -> Lease:
        """Move our lease to now + `lease_seconds`; `FencedError` if it is no longer ours."""
        until = math.ceil(self._clock() + lease_seconds)
        self._conditional(lease, "SET run_lease_expires_at = :until", {":until": {"N": str(until)}})
        return Lease(lease.request_id, lease.fencing_token, lease.attempt, float(until))

    def _conditional(
        self,
        lease: Lease,
        update: str,
        values: Mapping[str, Any],
        names: Mapping[str, str] | None = None,
    ) -> None:
        used_names, used_values = _used(
            update,
            _OURS,
            {"#status": "status", **(names or {})},
            {
                **values,
                ":running": {"S": RequestStatus.RUNNING.value},
                ":token": {"N": str(lease.fencing_token)},
            },
        )
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"request_id": {"S": lease.request_id}},
                UpdateExpression=update,
                ConditionExpression=_OURS,
                ExpressionAttributeNames=used_names,
                ExpressionAttributeValues=used_values,
            )
        except AWS_ERRORS as exc:
            if is_conditional_check_failure(exc):
                raise FencedError(
                    f"{lease.request_id}: fencing token {lease.fencing_token} is no longer "
                    "current (another worker claimed it, or it is final)"
                ) from exc
            raise


_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")


def _used(
    update: str, condition: str, names: Mapping[str, str], values: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, Any]]:
    """Only the placeholders the expressions use: DynamoDB refuses unused ones."""
    used = set(_PLACEHOLDER.findall(update + " " + condition))
    return (
        {k: v for k, v in names.items() if k in used},
        {k: v for k, v in values.items() if k in used},
    )


class FencedError(Exception):
    """Our lease was taken over: this worker must not write the request's outcome."""


@dataclass(frozen=True, slots=True)
class _Creation:
    fields: dict[str, tuple[str, Any]]
    """placeholder key -> (attribute name, attribute value)"""

    def names(self) -> list[tuple[str, str]]:
        return [(key, name) for key, (name, _value) in self.fields.items()]

    def values(self) -> dict[str, Any]:
        return {f":new_{key}": value for key, (_name, value) in self.fields.items()}


def _creation_fields(new: NewRecord, ttl: int) -> _Creation:
    """The fields of a record the distributor would have written; set only when missing."""
    fields: dict[str, tuple[str, Any]] = {
        "message_id": ("message_id", {"S": new.message_id}),
        "payload_hash": ("payload_hash", {"S": new.payload_hash}),
        "region": ("#region", {"S": new.region}),
        "priority": ("priority", {"S": new.priority}),
        "model_name": ("model_name", {"S": new.model_name}),
        "forwarded_at": ("forwarded_at", {"S": new.forwarded_at}),
        "lease_expires_at": ("lease_expires_at", {"N": "0"}),
        "expires_at": ("expires_at", {"N": str(ttl)}),
    }
    if new.queued_at:
        fields["queued_at"] = ("queued_at", {"S": new.queued_at})
    if new.callback_sns_topic:
        fields["callback_sns_topic"] = ("callback_sns_topic", {"S": new.callback_sns_topic})
    if new.deadline_at is not None:
        fields["deadline_at"] = ("deadline_at", {"N": str(new.deadline_at)})
    return _Creation(fields)
