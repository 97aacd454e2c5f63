"""Worker presence: each GPU worker's proof of life and capacity, read cheaply by routing.

Why a registry and not SQS in-flight counts: a consumer that holds messages without working
on them (a stuck client, a worker that died holding a batch) looks exactly like a busy GPU to
``ApproximateNumberOfMessagesNotVisible``, and attracts traffic. A worker that is alive says
so itself, at a low rate, and disappears when it stops saying it.

The table (``WORKERS_TABLE_NAME``, in the primary region beside the request records):

| attribute | type | meaning |
|---|---|---|
| ``region`` | S, HASH key | the region whose queue the worker consumes |
| ``worker_id`` | S, RANGE key | ``POD_NAME``, or host-pid |
| ``capacity`` | N | requests it can hold at once (its batch size) |
| ``busy`` | N | requests in the batch it is running now |
| ``draining`` | BOOL | it stopped taking work (SIGTERM); counts as no capacity |
| ``heartbeat_at`` | S | when it wrote this item (`orchestrator.core.timefmt`) |
| ``started_at`` | S | when the worker process started |
| ``expires_at`` | N | epoch seconds; the table's TTL attribute (about 3 heartbeats) |

Readers must filter on ``expires_at > now`` themselves: DynamoDB deletes expired items
lazily (typically within a few days), so the TTL only keeps the table small. A worker writes
its item every `HEARTBEAT_SECONDS` and at start, marks it draining when it stops receiving,
and deletes it when it exits; one that is killed simply stops writing and drops out of
`live_capacity` within `TTL_SECONDS`.

Cost: one PutItem per worker per `HEARTBEAT_SECONDS` (5 s: 17,280 a day, about $0.011 a day
per worker on demand), whatever the request rate; one Query per region per read (a region's
items share a partition).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import AWS_ERRORS, AwsUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

HEARTBEAT_SECONDS = 5.0
"""How often a live worker rewrites its item. Short because a worker killed without notice
keeps attracting traffic until its item expires: the routing simulator's hard-loss scenario
sends about 2.5 x the detection floor to a dead region with a 50 s TTL, about 1.7 x (TTL 10 s)
and 1.1 x (TTL 60 s) with a 15 s one (docs/routing.md). Cost: 17,280 PutItems (1 WRU each)
per worker per day."""
TTL_SECONDS = 2 * HEARTBEAT_SECONDS + 5
"""How long an item counts after its last write (15 s): one lost write is absorbed whole, a
second by the 5 s margin (write latency, clock skew between the worker and the reader)."""


def table_definition() -> dict[str, Any]:
    """CreateTable arguments (key schema, attribute definitions, billing) of the table."""
    return {
        "KeySchema": [
            {"AttributeName": "region", "KeyType": "HASH"},
            {"AttributeName": "worker_id", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "region", "AttributeType": "S"},
            {"AttributeName": "worker_id", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


@dataclass(frozen=True, slots=True)
class WorkerPresence:
    """One worker's item."""

    region: str
    worker_id: str
    capacity: int
    busy: int
    draining: bool
    heartbeat_at: str
    expires_at: int
    started_at: str = ""

    @property
    def available_capacity(self) -> int:
        """What routing may count on: nothing from a draining worker."""
        return 0 if self.draining else self.capacity

    def is_live(self, now: float) -> bool:
        return self.expires_at > now

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "region": {"S": self.region},
            "worker_id": {"S": self.worker_id},
            "capacity": {"N": str(self.capacity)},
            "busy": {"N": str(self.busy)},
            "draining": {"BOOL": self.draining},
            "heartbeat_at": {"S": self.heartbeat_at},
            "expires_at": {"N": str(self.expires_at)},
        }
        if self.started_at:
            item["started_at"] = {"S": self.started_at}
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> WorkerPresence:
        def number(name: str) -> int:
            raw = item.get(name) or {}
            return int(raw.get("N", 0))

        def text(name: str) -> str:
            return str((item.get(name) or {}).get("S", ""))

        draining_raw = item.get("draining") or {}
        draining = bool(draining_raw.get("BOOL", False)) or draining_raw.get("S") == "true"
        return cls(
            region=text("region"),
            worker_id=text("worker_id"),
            capacity=number("capacity"),
            busy=number("busy"),
            draining=draining,
            heartbeat_at=text("heartbeat_at"),
            expires_at=number("expires_at"),
            started_at=text("started_at"),
        )


def live_workers(
    client: DynamoDBClient, table: str, region: str, now: float
) -> list[WorkerPresence]:
    """The workers of `region` whose items have not expired (one paginated Query).

    Raises `AwsUnavailableError` when the table cannot be read.
    """
    workers: list[WorkerPresence] = []
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "#region = :region",
        "FilterExpression": "expires_at > :now",
        "ExpressionAttributeNames": {"#region": "region"},
        "ExpressionAttributeValues": {":region": {"S": region}, ":now": {"N": str(int(now))}},
    }
    try:
        while True:
            page = client.query(**kwargs)
            workers.extend(WorkerPresence.from_item(item) for item in page.get("Items", []))
            last = page.get("LastEvaluatedKey")
            if not last:
                return workers
            kwargs["ExclusiveStartKey"] = last
    except AWS_ERRORS as exc:
        raise AwsUnavailableError(f"worker presence of {region} unreadable: {exc}") from exc


def live_capacity(
    client: DynamoDBClient, table: str, regions: Iterable[str], now: float
) -> dict[str, int]:
    """Requests each region's live, non-draining workers can hold at once (0: none alive).

    One Query per region. Raises `AwsUnavailableError` when the table cannot be read, so a
    caller never mistakes "unknown" for "no workers".
    """
    return {
        region: sum(w.available_capacity for w in live_workers(client, table, region, now))
        for region in regions
    }


def publish(client: DynamoDBClient, table: str, presence: WorkerPresence) -> None:
    """Write (overwrite) the worker's item. AWS failures propagate (`AWS_ERRORS`)."""
    client.put_item(TableName=table, Item=presence.to_item())


def withdraw(client: DynamoDBClient, table: str, region: str, worker_id: str) -> None:
    """Delete the worker's item (it is stopping). AWS failures propagate (`AWS_ERRORS`)."""
    client.delete_item(
        TableName=table, Key={"region": {"S": region}, "worker_id": {"S": worker_id}}
    )
