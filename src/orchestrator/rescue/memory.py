"""The rescue function's memory across runs: since when each region has looked stalled.

Kept in the request table under a reserved key, `STATE_KEY`. A request id starts with a
letter or a digit (`orchestrator.core.request`), so ``#`` can never collide with one, and no
component scans the table. The item has no ``expires_at``: the TTL never removes it.

One consistent GetItem per run, and a PutItem only in the runs where a region starts or stops
looking stalled. The function runs with a reserved concurrency of 1, so there is a single
writer; even two overlapping runs could only restart a region's stall clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import AWS_ERRORS, AwsUnavailableError
from orchestrator.core.timefmt import iso_utc

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

STATE_KEY = "#rescue:stalled-since"


class MemoryUnavailableError(AwsUnavailableError):
    """The request table could not be read or written."""


class StallMemory:
    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self._client = client

    def load(self) -> dict[str, float]:
        """Region -> epoch seconds it has looked stalled since (absent: not stalled)."""
        try:
            item = self._client.get_item(
                TableName=self.table_name,
                Key={"request_id": {"S": STATE_KEY}},
                ConsistentRead=True,
            ).get("Item")
        except AWS_ERRORS as exc:
            raise MemoryUnavailableError(f"stall memory unreadable: {exc}") from exc
        regions: Mapping[str, Any] = ((item or {}).get("stalled_since") or {}).get("M") or {}
        return {region: float(value["N"]) for region, value in regions.items() if "N" in value}

    def save(self, stalled_since: Mapping[str, float], now: float) -> None:
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "request_id": {"S": STATE_KEY},
                    "stalled_since": {
                        "M": {
                            region: {"N": f"{since:.3f}"} for region, since in stalled_since.items()
                        }
                    },
                    "updated_at": {"S": iso_utc(now)},
                },
            )
        except AWS_ERRORS as exc:
            raise MemoryUnavailableError(f"stall memory not saved: {exc}") from exc
