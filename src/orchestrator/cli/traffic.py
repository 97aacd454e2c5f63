"""What `orchestrator send` puts on the master queue: requests in the published format, retries
of them (`--duplicate`) and malformed messages from the catalogue (`--malformed`), in order.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator.core.timefmt import iso_utc

from . import malformed

DEFAULT_MODEL = "gpt-l-7b"
DEFAULT_INPUT_BUCKET = "inference-inputs-dev"
DEFAULT_ACCOUNT = "123456789012"
PRIORITIES = ("high", "normal", "low")
VALID = "valid"


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def default_callback_topic(region: str) -> str:
    return f"arn:aws:sns:{region}:{DEFAULT_ACCOUNT}:inference-results-dev"


def build_request(
    request_id: str,
    *,
    model: str = DEFAULT_MODEL,
    priority: str = "normal",
    callback_sns_topic: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """One request in the published format.

    Everything but `timestamp` is derived from the arguments only, so two messages with the
    same request id (--duplicate) carry the same payload and the distributor sees a retry, not
    a payload conflict (the timestamp is excluded from the payload hash).
    """
    user = zlib.crc32(request_id.encode()) % 1000
    return {
        "request_id": request_id,
        "model_name": model,
        "input_data_url": f"s3://{DEFAULT_INPUT_BUCKET}/inputs/{request_id}.json",
        "callback_sns_topic": callback_sns_topic or default_callback_topic("us-east-1"),
        "priority": priority,
        "timestamp": timestamp or iso_utc(),
        "metadata": {
            "user_id": f"user{user:03d}",
            "session_id": f"session{user:03d}",
            "source": "test-tools/producer",
        },
    }


def encode(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def plan_request_ids(count: int, request_id: str | None, duplicate: bool) -> list[str]:
    """The request id of each valid message.

    --duplicate: every message gets the same id (--request-id or one generated id).
    --request-id without --duplicate and --count > 1: the id gets a 1-based zero-padded suffix
    (`job-7` -> `job-7-01`, `job-7-02`, ...), so each message is still a distinct request.
    """
    if duplicate:
        return [request_id or new_request_id()] * count
    if request_id is None:
        return [new_request_id() for _ in range(count)]
    if count == 1:
        return [request_id]
    width = len(str(count))
    return [f"{request_id}-{n:0{width}d}" for n in range(1, count + 1)]


def priority_for(index: int, priority: str) -> str:
    """`mixed` cycles high, normal, low (by distinct request); otherwise the fixed priority."""
    return PRIORITIES[index % len(PRIORITIES)] if priority == "mixed" else priority


def malformed_request_id(kind: str) -> str:
    """``malformed-missing-request-id-1a2b3c4d``: says which case, unique per message."""
    slug = re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")
    return f"malformed-{slug}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Planned:
    """One message to send. `kind` is `VALID` or a malformed case's kind."""

    kind: str
    request_id: str
    priority: str = "normal"
    body: str | None = None  # fixed body (malformed); valid bodies are built at send time

    @property
    def valid(self) -> bool:
        return self.kind == VALID


def interleave(count: int, malformed_count: int) -> Iterator[bool]:
    """True where a malformed message goes: the malformed slots spread evenly among all."""
    total = count + malformed_count
    for i in range(total):
        yield (i + 1) * malformed_count // total > i * malformed_count // total


def plan_messages(
    *,
    count: int,
    request_id: str | None = None,
    duplicate: bool = False,
    priority: str = "normal",
    malformed_count: int = 0,
) -> list[Planned]:
    ids = plan_request_ids(count, request_id, duplicate)
    plan: list[Planned] = []
    valid_index = malformed_index = 0
    for is_malformed in interleave(count, malformed_count):
        if is_malformed:
            kind = malformed.TRAFFIC_KINDS[malformed_index % len(malformed.TRAFFIC_KINDS)]
            rid = malformed_request_id(kind)
            case, body = malformed.malformed_body(malformed_index, rid)
            plan.append(Planned(kind=case.kind, request_id=rid, body=body))
            malformed_index += 1
        else:
            rid = ids[valid_index]
            distinct = 0 if duplicate else valid_index
            plan.append(Planned(VALID, rid, priority_for(distinct, priority)))
            valid_index += 1
    return plan


def body_of(item: Planned, model: str, callback_sns_topic: str | None) -> str:
    """The message body, built now for a valid request (its timestamp is the send time)."""
    if item.body is not None:
        return item.body
    return encode(
        build_request(
            item.request_id,
            model=model,
            priority=item.priority,
            callback_sns_topic=callback_sns_topic,
        )
    )
