"""SQS event records and request bodies, shaped as Lambda delivers them."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

MASTER_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:inference-master-queue-dev"


def request(request_id: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": request_id or f"req-{uuid.uuid4()}",
        "model_name": "gpt-l-7b",
        "input_data_url": "s3://bucket/inputs/file.json",
        "callback_sns_topic": "arn:aws:sns:us-east-1:123456789012:results",
        "priority": "normal",
        "timestamp": "2025-12-02T10:23:00Z",
        "metadata": {"user_id": "user123"},
    }
    body.update(fields)
    return body


def record(
    body: str | dict[str, Any], message_id: str | None = None, receive_count: int = 1
) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": f"handle-{uuid.uuid4().hex}",
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1764670980000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1764670980001",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode("utf-8", "surrogatepass")).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": MASTER_QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def valid_records(count: int, **fields: Any) -> list[dict[str, Any]]:
    return [record(request(**fields)) for _ in range(count)]


class FakeContext:
    """The parts of a Lambda context the handler reads."""

    function_name = "inference-distributor-test"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = (
        "arn:aws:lambda:us-east-1:123456789012:function:inference-distributor-test"
    )
    memory_limit_in_mb = 512

    def __init__(self, remaining_ms: int = 60_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
