"""The worker's side of the request record: claim, finish, release and renew, each one
conditional write (`orchestrator.core.record` has the state machine).

- **claim**: ``FORWARDED → RUNNING``, or ``RUNNING`` whose lease has run out (its worker died) →
  ``RUNNING`` again; sets worker_id, started_at, the run lease and `region` (the claiming worker's:
  a request handed back by a stopping region and rescued elsewhere runs, and is recorded, where it
  was claimed last), and increments `attempt` and `fencing_token`. A request with no record (put
  straight on a region queue, or its record already removed by TTL) is created as ``RUNNING`` by a
  second write, a PutItem conditional on ``attribute_not_exists``, with the fields the distributor
  would have written.
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

_CLAIMABLE = "#status = :forwarded OR (#status = :running AND run_lease_expires_at < :now)"
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
        outcome = self._transition(
            new,
            now,
            "SET #status = :running, #region = :region, worker_id = :worker, started_at = :at, "
            "run_lease_expires_at = :until ADD fencing_token :one, attempt :one",
            {
                ":running": {"S": RequestStatus.RUNNING.value},
                ":region": {"S": new.region},
                ":worker": {"S": self.worker_id},
                ":until": {"N": str(until)},
                ":one": {"N": "1"},
            },
            lambda: _created(
                new,
                RequestStatus.RUNNING,
                now,
                int(now) + self._ttl_seconds,
                worker_id=self.worker_id,
                attempt=1,
                fencing_token=1,
                run_lease_expires_at=until,
                started_at=iso_utc(now),
            ),
        )
        if outcome.kind is not ClaimKind.CLAIMED or outcome.record is None:
            return outcome
        record = outcome.record
        lease = Lease(record.request_id, record.fencing_token, record.attempt, float(until))
        return ClaimOutcome(ClaimKind.CLAIMED, record, lease)

    def expire(self, new: NewRecord, message: str) -> ClaimOutcome:
        """Mark a request past its deadline EXPIRED without running it."""
        now = self._clock()
        message = message[:MAX_ERROR_MESSAGE_CHARS]
        return self._transition(
            new,
            now,
            "SET #status = :expired, finished_at = :at, error_code = :code, error_message = :msg",
            {
                ":expired": {"S": RequestStatus.EXPIRED.value},
                ":code": {"S": "REQUEST_EXPIRED"},
                ":msg": {"S": message},
            },
            lambda: _created(
                new,
                RequestStatus.EXPIRED,
                now,
                int(now) + self._ttl_seconds,
                finished_at=iso_utc(now),
                error_code="REQUEST_EXPIRED",
                error_message=message,
            ),
        )

    def _transition(
        self,
        new: NewRecord,
        now: float,
        update: str,
        values: Mapping[str, Any],
        created: Callable[[], RequestRecord],
    ) -> ClaimOutcome:
        """Update the existing record if it is claimable; create it if there is none."""
        outcome = self._update_existing(new.request_id, now, update, values)
        if outcome is not None:
            return outcome
        outcome = self._create(created(), now)
        if outcome is not None:
            return outcome
        # Created by somebody else between our two writes: take it the usual way.
        return self._update_existing(new.request_id, now, update, values) or ClaimOutcome(
            ClaimKind.HELD, retry_after=1.0
        )

    def _update_existing(
        self, request_id: str, now: float, update: str, values: Mapping[str, Any]
    ) -> ClaimOutcome | None:
        """None: there is no record."""
        attribute_values = {
            ":forwarded": {"S": RequestStatus.FORWARDED.value},
            ":running": {"S": RequestStatus.RUNNING.value},
            ":now": {"N": str(int(now))},
            ":at": {"S": iso_utc(now)},
            **values,
        }
        names, used_values = _used(
            update, _CLAIMABLE, {"#status": "status", "#region": "region"}, attribute_values
        )
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key={"request_id": {"S": request_id}},
                UpdateExpression=update,
                ConditionExpression=_CLAIMABLE,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=used_values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except AWS_ERRORS as exc:
            if not is_conditional_check_failure(exc):
                return _unavailable(exc)
            old = dict(exc.response.get("Item") or {})  # type: ignore[attr-defined,unused-ignore]
            return self._refused(old, now) if old else None
        return ClaimOutcome(ClaimKind.CLAIMED, RequestRecord.from_item(response["Attributes"]))

    def _create(self, record: RequestRecord, now: float) -> ClaimOutcome | None:
        """None: a record appeared meanwhile."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=record.to_item(),
                ConditionExpression="attribute_not_exists(request_id)",
            )
        except AWS_ERRORS as exc:
            if not is_conditional_check_failure(exc):
                return _unavailable(exc)
            return None
        return ClaimOutcome(ClaimKind.CLAIMED, record)

    @staticmethod
    def _refused(old: Mapping[str, Any], now: float) -> ClaimOutcome:
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


def _unavailable(exc: BaseException) -> ClaimOutcome:
    return ClaimOutcome(ClaimKind.UNAVAILABLE, error=f"{error_code(exc)}: {one_line(exc)}")


def _created(
    new: NewRecord, status: RequestStatus, now: float, ttl: int, **fields: Any
) -> RequestRecord:
    """The record of a request that had none: what the distributor would have written, in
    its new state."""
    return RequestRecord(
        request_id=new.request_id,
        status=status,
        message_id=new.message_id,
        payload_hash=new.payload_hash,
        region=new.region,
        priority=new.priority,
        model_name=new.model_name,
        forwarded_at=new.forwarded_at,
        lease_expires_at=0,
        expires_at=ttl,
        queued_at=new.queued_at,
        callback_sns_topic=new.callback_sns_topic,
        deadline_at=new.deadline_at,
        **fields,
    )
