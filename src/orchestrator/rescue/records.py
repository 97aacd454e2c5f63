"""The one write the rescue makes to a request record: its new region, while still FORWARDED.

A single conditional UpdateItem with ``ReturnValuesOnConditionCheckFailure=ALL_OLD``: when a
worker has claimed the request (RUNNING) or finished it, or the record is gone, the refusal
already says so, without a second read. A worker's claim is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import AWS_ERRORS, AwsUnavailableError, is_conditional_check_failure
from orchestrator.core.record import RequestRecord, RequestStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


class RecordUpdate(StrEnum):
    MOVED = "moved"
    """The record was FORWARDED and now names the new region."""
    CLAIMED = "claimed"
    """A worker claimed or finished the request: its claim stands, the record is untouched."""
    MISSING = "missing"
    """No record (expired by TTL, or never written by this orchestrator)."""


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    update: RecordUpdate
    status: RequestStatus | None = None
    """The status found when the update was refused."""


class RecordsUnavailableError(AwsUnavailableError):
    """The request table refused or did not answer (not a condition): retry later."""


class RequestRecords:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self._client = client

    def move(self, request_id: str, region: str, forwarded_at: str) -> RecordOutcome:
        """Point the record at `region` if no worker has claimed the request."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"request_id": {"S": request_id}},
                UpdateExpression="SET #region = :region, forwarded_at = :at",
                ConditionExpression="#status = :forwarded",
                ExpressionAttributeNames={"#region": "region", "#status": "status"},
                ExpressionAttributeValues={
                    ":region": {"S": region},
                    ":at": {"S": forwarded_at},
                    ":forwarded": {"S": RequestStatus.FORWARDED.value},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except AWS_ERRORS as exc:
            if not is_conditional_check_failure(exc):
                raise RecordsUnavailableError(f"record {request_id} not updated: {exc}") from exc
            old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[attr-defined,unused-ignore]
            if not old:
                return RecordOutcome(RecordUpdate.MISSING)
            return RecordOutcome(RecordUpdate.CLAIMED, RequestRecord.from_item(old).status)
        return RecordOutcome(RecordUpdate.MOVED)
