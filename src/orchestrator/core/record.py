"""The request record in DynamoDB: one item per request id, written by every component.

The distributor creates it when it claims a request (`FORWARDED`); the worker that runs the
request moves it forward; the rescue function may change its region while it is still
`FORWARDED`. Its status only moves forward, every transition a conditional write::

    FORWARDED (region) ──▶ RUNNING (worker, attempt, lease, fencing token) ──▶ SUCCEEDED
                                  │  ▲ lease expired: claimed again, new token   ├─▶ FAILED
                                  └──┘                                           └─▶ EXPIRED

Attribute names are the field names below. The table's key is ``request_id``; ``expires_at``
is its TTL attribute. Timestamps are `orchestrator.core.timefmt` strings; lease expiries and
the TTL are epoch seconds (numbers, so conditions can compare them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


class RequestStatus(StrEnum):
    FORWARDED = "FORWARDED"
    """In a region queue, not yet claimed by a worker."""
    RUNNING = "RUNNING"
    """Claimed by a worker under a lease (``run_lease_expires_at``, ``fencing_token``)."""
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    """Older than its deadline when a worker got it: never run."""

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({RequestStatus.SUCCEEDED, RequestStatus.FAILED, RequestStatus.EXPIRED})


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    status: RequestStatus
    message_id: str
    """The master-queue message whose claim created the record."""
    payload_hash: str
    region: str
    """The region queue the request was forwarded to (changed by a reroute or a rescue)."""
    priority: str
    model_name: str
    forwarded_at: str
    lease_expires_at: int
    """The distributor's claim lease: until then a redelivered copy of the same master
    message is 'in progress', after it the claim may be taken again (only while FORWARDED)."""
    expires_at: int
    """DynamoDB TTL (epoch seconds)."""
    queued_at: str | None = None
    """The client's own timestamp, when it sent one."""
    callback_sns_topic: str | None = None
    deadline_at: int | None = None
    """Epoch seconds after which the request is not run (EXPIRED), when it has a deadline."""
    worker_id: str | None = None
    attempt: int = 0
    fencing_token: int = 0
    """Increases with every worker claim; the final write is conditional on it."""
    run_lease_expires_at: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    result: str | None = None
    """A small result, inline (JSON text)."""
    result_location: str | None = None
    """Where a large result is (``s3://bucket/key``)."""
    error_code: str | None = None
    error_message: str | None = None

    def to_item(self) -> dict[str, AttributeValueTypeDef]:
        """The DynamoDB item (low-level attribute values); None fields are left out."""
        item: dict[str, AttributeValueTypeDef] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool):  # not a field type today; keep bools out of N
                raise TypeError(f"{f.name}: booleans are not stored")
            item[f.name] = {"N": str(value)} if isinstance(value, int) else {"S": str(value)}
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> RequestRecord:
        """Read an item written by any version of the orchestrator (missing fields default)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = item.get(f.name)
            if not raw:
                continue
            if "N" in raw:
                values[f.name] = int(raw["N"])
            elif "S" in raw:
                values[f.name] = raw["S"]
        values["status"] = RequestStatus(values.get("status", RequestStatus.FORWARDED))
        for required in ("message_id", "payload_hash", "region", "priority", "model_name"):
            values.setdefault(required, "")
        values.setdefault("forwarded_at", "")
        values.setdefault("lease_expires_at", 0)
        values.setdefault("expires_at", 0)
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (for `orchestrator status --json` and notifications)."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }
