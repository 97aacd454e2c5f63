"""The request ledger in DynamoDB: who claimed a request id, with what payload, routed where.

Happy path: one conditional PutItem per forwarded message. The claim records the request id,
the claiming SQS message id, the payload hash, the chosen region, a lease expiry and a TTL.
It succeeds when

- no record exists (or the record's TTL has passed but DynamoDB has not removed it yet), or
- the record was claimed by the *same* SQS message, is still `FORWARDED` and its lease has
  run out: a redelivery after a crash or time-out, which must be forwarded again. A record a
  worker has claimed (`RUNNING`) or finished is never taken back: a redelivery of its master
  message is a duplicate.

Otherwise DynamoDB returns the existing record (``ReturnValuesOnConditionCheckFailure=ALL_OLD``,
no second read), and the claim is a client DUPLICATE (same payload), a CONFLICT (same id,
other payload) or IN_PROGRESS (the same message is being handled by another invocation right
now, so this copy must come back later).

A failed forward deletes the claim (`release`, conditional on still owning it), so the retry
of the message claims afresh and nothing is lost. A forward retried in another region
updates the record's region (`reroute`) — a second write on the failure path only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import (
    AWS_ERRORS,
    AwsUnavailableError,
    is_conditional_check_failure,
)
from orchestrator.core.record import RequestRecord, RequestStatus
from orchestrator.core.request import ParsedRequest
from orchestrator.core.timefmt import iso_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

_CLAIM_CONDITION = (
    "attribute_not_exists(request_id) OR expires_at < :now "
    "OR (message_id = :message_id AND lease_expires_at < :now AND #status = :forwarded)"
)


class ClaimStatus(StrEnum):
    CLAIMED = "claimed"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class Claim:
    status: ClaimStatus
    existing_message_id: str | None = None
    existing_region: str | None = None
    existing_payload_hash: str | None = None


class LedgerError(AwsUnavailableError):
    """The ledger could not be read or written; the message must be retried."""


class Ledger:
    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        ttl_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self._client = client
        self._ttl_seconds = ttl_days * 86_400
        self._clock = clock

    def claim(
        self,
        parsed: ParsedRequest,
        message_id: str,
        region: str,
        lease_seconds: float,
        forwarded_at: str,
    ) -> Claim:
        """Claim `parsed.request_id` for `message_id`, to be forwarded to `region`."""
        now = self._clock()
        request = parsed.request
        record = RequestRecord(
            request_id=parsed.request_id,
            status=RequestStatus.FORWARDED,
            message_id=message_id,
            payload_hash=parsed.payload_hash,
            region=region,
            priority=request.priority,
            model_name=request.model_name,
            forwarded_at=forwarded_at,
            lease_expires_at=int(now + lease_seconds) + 1,
            expires_at=int(now) + self._ttl_seconds,
            queued_at=_iso_or_none(request.timestamp),
            callback_sns_topic=request.callback_sns_topic,
        )
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=record.to_item(),
                ConditionExpression=_CLAIM_CONDITION,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":message_id": {"S": message_id},
                    ":forwarded": {"S": RequestStatus.FORWARDED.value},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except AWS_ERRORS as exc:
            if not is_conditional_check_failure(exc):
                raise LedgerError(f"claim of {parsed.request_id} failed: {exc}") from exc
            old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[attr-defined,unused-ignore]
            return self._refused(parsed, message_id, old, now)
        return Claim(ClaimStatus.CLAIMED)

    @staticmethod
    def _refused(parsed: ParsedRequest, message_id: str, old: dict[str, Any], now: float) -> Claim:
        existing = RequestRecord.from_item(old) if old else None
        if existing is None:  # the record vanished between the condition and the answer
            return Claim(ClaimStatus.IN_PROGRESS)
        if existing.message_id == message_id:
            # The same master message again. While FORWARDED, another invocation holds it
            # (its lease has not run out): come back later. Once a worker has claimed or
            # finished it, this redelivery is a duplicate: never undo the worker's claim.
            status = (
                ClaimStatus.IN_PROGRESS
                if existing.status is RequestStatus.FORWARDED
                else ClaimStatus.DUPLICATE
            )
        elif existing.payload_hash not in ("", parsed.payload_hash):
            status = ClaimStatus.CONFLICT
        else:
            status = ClaimStatus.DUPLICATE
        return Claim(
            status,
            existing.message_id or None,
            existing.region or None,
            existing.payload_hash or None,
        )

    def release(self, request_id: str, message_id: str) -> None:
        """Delete the claim if `message_id` still owns it and no worker has it, so a retry
        can claim again."""
        try:
            self._client.delete_item(
                TableName=self.table_name,
                Key={"request_id": {"S": request_id}},
                ConditionExpression="message_id = :message_id AND #status = :forwarded",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":message_id": {"S": message_id},
                    ":forwarded": {"S": RequestStatus.FORWARDED.value},
                },
            )
        except AWS_ERRORS as exc:
            if is_conditional_check_failure(exc):
                return  # somebody else owns it now: nothing of ours to release
            raise LedgerError(f"release of {request_id} failed: {exc}") from exc

    def reroute(self, request_id: str, message_id: str, region: str, forwarded_at: str) -> None:
        """Record that the request went to `region` after all (a retry in another region)."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"request_id": {"S": request_id}},
                UpdateExpression="SET #region = :region, forwarded_at = :at",
                ConditionExpression="message_id = :message_id AND #status = :forwarded",
                ExpressionAttributeNames={"#region": "region", "#status": "status"},
                ExpressionAttributeValues={
                    ":region": {"S": region},
                    ":at": {"S": forwarded_at},
                    ":message_id": {"S": message_id},
                    ":forwarded": {"S": RequestStatus.FORWARDED.value},
                },
            )
        except AWS_ERRORS as exc:
            if is_conditional_check_failure(exc):
                return  # a worker already has it: its record says where it runs
            raise LedgerError(f"reroute of {request_id} failed: {exc}") from exc


def _iso_or_none(moment: Any) -> str | None:
    return None if moment is None else iso_utc(moment.timestamp())
