"""Turning received messages into work items: parse, deadline, record fields, copies.

Pure functions of a message and the clock, so the rules are tested without AWS.

The deadline (SageMaker's ``RequestTTLSeconds``): the request's metadata ``deadline`` (an
ISO-8601 time with a zone, or epoch seconds) if it has one; else its queueing time plus
metadata ``ttl_seconds``, or plus ``REQUEST_TTL_SECONDS``. The queueing time is the client's
``timestamp``, but never later than the distributor's ``forwarded_at`` (a client clock
running ahead must not extend a deadline), else ``forwarded_at``, else the region message's
``SentTimestamp``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.attributes import RoutingAttributes, client_attributes
from orchestrator.core.request import (
    InferenceRequest,
    InvalidRequestError,
    parse_request,
    readable_request_id,
)
from orchestrator.core.timefmt import iso_utc, parse_iso
from orchestrator.worker.exceptions import FailureCode, PermanentError
from orchestrator.worker.queue import Held
from orchestrator.worker.records import ClaimOutcome, Lease, NewRecord
from orchestrator.worker.request import InputReader, Request


@dataclass(eq=False)
class Item:
    """One received message on its way through a batch."""

    held: Held
    body: str
    request: InferenceRequest | None = None
    invalid: InvalidRequestError | PermanentError | None = None
    new_record: NewRecord | None = None
    deadline_at: float | None = None
    entered_queue_at: float | None = None
    """Epoch seconds the request entered the region queue (queue-wait metric)."""
    claim: ClaimOutcome | None = None
    lease: Lease | None = None
    followers: list[Item] = field(default_factory=list)
    """Other copies of the same request in this batch: they share this item's fate."""

    @property
    def request_id(self) -> str | None:
        if self.request is not None:
            return self.request.request_id
        return readable_request_id(self.body)

    def as_request(self, reader: InputReader | None) -> Request:
        assert self.request is not None
        request = self.request
        attributes = {
            name: attribute.value
            for name, attribute in client_attributes(self.held.message).items()
        }
        return Request(
            request_id=request.request_id,
            model_name=request.model_name,
            priority=request.priority,
            metadata=dict(request.metadata),
            input_data_url=request.input_data_url,
            attributes=attributes,
            document=request.model_dump(mode="json"),
            attempt=self.lease.attempt if self.lease else 1,
            deadline_at=self.deadline_at,
            _reader=reader,
        )


def parse_item(held: Held, region: str, default_ttl: float | None) -> Item:
    message = held.message
    body = str(message.get("Body", ""))
    item = Item(held, body)
    try:
        parsed = parse_request(body)
    except InvalidRequestError as exc:
        item.invalid = exc
        return item
    request = parsed.request
    item.request = request
    routing = RoutingAttributes.from_message(message)
    system = message.get("Attributes") or {}
    sent = _epoch_ms(system.get("SentTimestamp"))
    forwarded = parse_iso(routing.forwarded_at) if routing else None
    item.entered_queue_at = forwarded or sent
    queued = request.timestamp.timestamp() if request.timestamp is not None else None
    start = queued if queued is not None else item.entered_queue_at
    if start is not None and item.entered_queue_at is not None:
        start = min(start, item.entered_queue_at)
    try:
        item.deadline_at = deadline_of(request.metadata, start, default_ttl)
    except PermanentError as exc:
        item.invalid = exc
    item.new_record = NewRecord(
        request_id=request.request_id,
        message_id=(routing.origin_message_id if routing else "") or held.message_id,
        payload_hash=parsed.payload_hash,
        region=region,
        priority=request.priority,
        model_name=request.model_name,
        forwarded_at=(routing.forwarded_at if routing else "") or iso_utc(sent or None),
        queued_at=iso_utc(queued) if queued is not None else None,
        callback_sns_topic=request.callback_sns_topic,
        deadline_at=math.ceil(item.deadline_at) if item.deadline_at is not None else None,
    )
    return item


def deadline_of(
    metadata: dict[str, Any], start: float | None, default_ttl: float | None
) -> float | None:
    """Epoch seconds after which the request must not run (module docstring); None: never.
    A ``deadline`` or ``ttl_seconds`` that is not a time is a `PermanentError`."""
    if "deadline" in metadata and metadata["deadline"] is not None:
        raw = metadata["deadline"]
        if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
            return float(raw)
        parsed = parse_iso(raw)
        if parsed is None:
            raise PermanentError(
                "metadata.deadline must be an ISO-8601 time with a zone or epoch seconds",
                FailureCode.INVALID_METADATA,
            )
        return parsed
    ttl: Any = metadata.get("ttl_seconds", default_ttl)
    if ttl is None:
        ttl = default_ttl
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        raise PermanentError(
            "metadata.ttl_seconds must be a positive number", FailureCode.INVALID_METADATA
        )
    if start is None:
        return None
    return start + float(ttl)


def group_copies(items: list[Item]) -> list[Item]:
    """The leaders: the first item of each request id; later copies become its followers.
    Invalid items are leaders of their own."""
    leaders: list[Item] = []
    by_id: dict[str, Item] = {}
    for item in items:
        request_id = (
            item.request.request_id if item.request is not None and item.invalid is None else None
        )
        if request_id is not None and request_id in by_id:
            by_id[request_id].followers.append(item)
            continue
        if request_id is not None:
            by_id[request_id] = item
        leaders.append(item)
    return leaders


def _epoch_ms(raw: Any) -> float | None:
    try:
        return int(raw) / 1000.0 if raw is not None else None
    except (TypeError, ValueError):
        return None
