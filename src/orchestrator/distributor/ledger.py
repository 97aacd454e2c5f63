"""The request ledger in DynamoDB: who claimed a request id, with what payload, routed where.

Happy path: one conditional PutItem per forwarded message. The claim records the request id,
the claiming SQS message id, the payload hash, the chosen region, a lease expiry and a TTL.
It succeeds when

- no record exists (or the record's TTL has passed but DynamoDB has not removed it yet), or
- the record was claimed by the *same* SQS message and its lease has run out: a redelivery
  after a crash or time-out, which must be forwarded again.

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
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from orchestrator.core.request import ParsedRequest

_CLAIM_CONDITION = (
    "attribute_not_exists(request_id) OR expires_at < :now "
    "OR (message_id = :message_id AND lease_expires_at < :now)"
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


class LedgerError(RuntimeError):
    """The ledger could not be read or written; the message must be retried."""


def iso_now(now: float) -> str:
    return (
        datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


class Ledger:
    def __init__(
        self,
        table_name: str,
        client: Any,
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
        item = {
            "request_id": {"S": parsed.request_id},
            "message_id": {"S": message_id},
            "payload_hash": {"S": parsed.payload_hash},
            "region": {"S": region},
            "status": {"S": "FORWARDED"},
            "priority": {"S": parsed.request.priority},
            "model_name": {"S": parsed.request.model_name},
            "forwarded_at": {"S": forwarded_at},
            "lease_expires_at": {"N": str(int(now + lease_seconds) + 1)},
            "expires_at": {"N": str(int(now) + self._ttl_seconds)},
        }
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression=_CLAIM_CONDITION,
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":message_id": {"S": message_id},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise LedgerError(f"claim of {parsed.request_id} failed: {exc}") from exc
            old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            return self._refused(parsed, message_id, old)
        except Exception as exc:
            raise LedgerError(f"claim of {parsed.request_id} failed: {exc}") from exc
        return Claim(ClaimStatus.CLAIMED)

    @staticmethod
    def _refused(parsed: ParsedRequest, message_id: str, old: dict[str, Any]) -> Claim:
        old_message_id = old.get("message_id", {}).get("S")
        old_region = old.get("region", {}).get("S")
        old_hash = old.get("payload_hash", {}).get("S")
        if old_message_id == message_id:
            status = ClaimStatus.IN_PROGRESS
        elif old_hash not in (None, parsed.payload_hash):
            status = ClaimStatus.CONFLICT
        else:
            status = ClaimStatus.DUPLICATE
        return Claim(status, old_message_id, old_region, old_hash)

    def release(self, request_id: str, message_id: str) -> None:
        """Delete the claim if `message_id` still owns it, so a retry can claim again."""
        try:
            self._client.delete_item(
                TableName=self.table_name,
                Key={"request_id": {"S": request_id}},
                ConditionExpression="message_id = :message_id",
                ExpressionAttributeValues={":message_id": {"S": message_id}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return  # somebody else owns it now: nothing of ours to release
            raise LedgerError(f"release of {request_id} failed: {exc}") from exc
        except Exception as exc:
            raise LedgerError(f"release of {request_id} failed: {exc}") from exc

    def reroute(self, request_id: str, message_id: str, region: str, forwarded_at: str) -> None:
        """Record that the request went to `region` after all (a retry in another region)."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"request_id": {"S": request_id}},
                UpdateExpression="SET #region = :region, forwarded_at = :at",
                ConditionExpression="message_id = :message_id",
                ExpressionAttributeNames={"#region": "region"},
                ExpressionAttributeValues={
                    ":region": {"S": region},
                    ":at": {"S": forwarded_at},
                    ":message_id": {"S": message_id},
                },
            )
        except Exception as exc:
            raise LedgerError(f"reroute of {request_id} failed: {exc}") from exc
