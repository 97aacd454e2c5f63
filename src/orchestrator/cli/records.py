"""Reading request records (`orchestrator.core.record`) from the request table, for
`orchestrator status` and `orchestrator send --wait`.

Reads are strongly consistent: a person watching a request wants the state a worker wrote a
moment ago. Many records are read with BatchGetItem, 100 keys per call (DynamoDB's limit); the
keys DynamoDB leaves unprocessed under load are asked again with exponential backoff and
jitter. AWS failures become `RecordReadError` with a one-line reason.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from orchestrator.core.errors import OrchestratorError, error_code, one_line
from orchestrator.core.record import RequestRecord

from .target import describe_endpoint, is_unreachable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

MAX_BATCH_GET_KEYS = 100
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0
MAX_UNPROCESSED_ROUNDS = 8


class RecordReadError(OrchestratorError):
    """The request table could not be read (missing, unreachable, refused)."""


def backoff(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry `attempt` (0-based): full jitter, capped."""
    return rng() * min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)


def _batches(ids: Sequence[str], size: int = MAX_BATCH_GET_KEYS) -> Iterator[Sequence[str]]:
    for offset in range(0, len(ids), size):
        yield ids[offset : offset + size]


class RequestTable:
    """The request records of one table."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self.sleep = sleep
        self.calls = 0
        """BatchGetItem/GetItem calls made (the cost of watching)."""

    def get(self, request_id: str) -> RequestRecord | None:
        self.calls += 1
        try:
            item = self.client.get_item(
                TableName=self.table_name,
                Key={"request_id": {"S": request_id}},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc) from exc
        return RequestRecord.from_item(item) if item else None

    def get_many(self, request_ids: Iterable[str]) -> dict[str, RequestRecord]:
        """The records that exist among `request_ids`, by request id."""
        ids = list(dict.fromkeys(request_ids))
        found: dict[str, RequestRecord] = {}
        for batch in _batches(ids):
            for item in self._batch_get([{"request_id": {"S": rid}} for rid in batch]):
                record = RequestRecord.from_item(item)
                found[record.request_id] = record
        return found

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for attempt in range(MAX_UNPROCESSED_ROUNDS + 1):
            self.calls += 1
            try:
                response = self.client.batch_get_item(
                    RequestItems={self.table_name: {"Keys": keys, "ConsistentRead": True}}
                )
            except (ClientError, BotoCoreError) as exc:
                raise self._error(exc) from exc
            items.extend(response.get("Responses", {}).get(self.table_name, []))
            unprocessed = (response.get("UnprocessedKeys") or {}).get(self.table_name)
            keys = list(unprocessed["Keys"]) if unprocessed else []
            if not keys:
                return items
            self.sleep(backoff(attempt))
        raise RecordReadError(
            f"table {self.table_name}: {len(keys)} keys still unprocessed after "
            f"{MAX_UNPROCESSED_ROUNDS} retries (throttled)"
        )

    def _error(self, exc: ClientError | BotoCoreError) -> RecordReadError:
        if is_unreachable(exc):
            return RecordReadError(
                f"cannot reach DynamoDB at {describe_endpoint(self.client)}: {one_line(exc)}"
            )
        if error_code(exc) == "ResourceNotFoundException":
            region = self.client.meta.region_name
            return RecordReadError(f"table {self.table_name} does not exist in {region}")
        return RecordReadError(f"table {self.table_name}: {one_line(exc)}")
