"""What a run left behind, read back for the audit: the request records, their results (inline
or in S3), the notifications the callback topic delivered, and the dead-letter queues.

Everything is read through the same contracts the product uses: `RequestRecord.from_item`,
the worker's notification body (`orchestrator.worker.notify`), `DeadLetter.from_message`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from orchestrator.core.dead_letter import DeadLetter
from orchestrator.core.errors import AWS_ERRORS, error_code
from orchestrator.core.record import RequestRecord
from orchestrator.core.sqs import MAX_BATCH_ENTRIES, receive_all

INTERNAL_PREFIX = "#"
"""Items of the request table that are not requests (the rescue's memory, ``#rescue:...``)."""


def request_records(dynamodb: Any, table: str) -> dict[str, RequestRecord]:
    """Every request's record (a consistent Scan), by request id."""
    records: dict[str, RequestRecord] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            request_id = str((item.get("request_id") or {}).get("S", ""))
            if request_id and not request_id.startswith(INTERNAL_PREFIX):
                records[request_id] = RequestRecord.from_item(item)
        if not page.get("LastEvaluatedKey"):
            return records
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@dataclass(frozen=True)
class ResultRead:
    """A SUCCEEDED request's result as a client would read it."""

    where: str
    """``inline`` (in the record), ``s3`` (at ``result_location``) or ``missing``."""
    value: Any = None
    problem: str | None = None
    """Why it could not be read (None: it was)."""


def read_result(
    record: RequestRecord, s3: Mapping[str, Any], bucket_regions: Mapping[str, str]
) -> ResultRead:
    """The record's inline result, or the object its ``result_location`` names (read with
    the S3 client of the bucket's region)."""
    if record.result is not None:
        try:
            return ResultRead("inline", json.loads(record.result))
        except ValueError as exc:
            return ResultRead("inline", problem=f"inline result is not JSON: {exc}")
    if record.result_location is None:
        return ResultRead("missing", problem="no result and no result_location")
    parts = urlsplit(record.result_location)
    if parts.scheme != "s3":
        return ResultRead("s3", problem=f"result_location {record.result_location!r} is not s3://")
    bucket, key = parts.netloc, parts.path.lstrip("/")
    client = s3.get(bucket_regions.get(bucket, ""), None) or next(iter(s3.values()))
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return ResultRead("s3", json.loads(body.read()))
        finally:
            body.close()
    except AWS_ERRORS as exc:
        return ResultRead("s3", problem=f"{record.result_location}: {error_code(exc)}")
    except ValueError as exc:
        return ResultRead("s3", problem=f"{record.result_location} is not JSON: {exc}")


@dataclass(frozen=True)
class Notification:
    """One message the callback topic delivered to the subscribed queue."""

    request_id: str
    status: str
    body: Mapping[str, Any]


def drain_notifications(sqs: Any, queue_url: str) -> list[Notification]:
    """Receive and delete everything in the subscribed queue (SNS's JSON envelope, whose
    ``Message`` is the worker's notification)."""
    found: list[Notification] = []
    while True:
        messages = receive_all(sqs, queue_url, visibility_timeout=60)
        if not messages:
            return found
        for message in messages:
            envelope = json.loads(message["Body"])
            body = json.loads(envelope["Message"]) if "Message" in envelope else envelope
            found.append(Notification(str(body.get("request_id")), str(body.get("status")), body))
        for start in range(0, len(messages), MAX_BATCH_ENTRIES):
            chunk = messages[start : start + MAX_BATCH_ENTRIES]
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )


def drain_dead_letters(sqs: Any, queue_url: str) -> list[DeadLetter]:
    """Every dead letter in the queue, once each (hidden for five minutes, not deleted)."""
    found: dict[str, DeadLetter] = {}
    for message in receive_all(sqs, queue_url, visibility_timeout=300):
        found.setdefault(message["MessageId"], DeadLetter.from_message(message))
    return list(found.values())
