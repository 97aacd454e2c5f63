"""What Lambda gives a function: the SQS event record shape, the context object, and one
execution environment per concurrent invocation.

`sqs_record(message, queue_arn, region)` turns a `ReceiveMessage` message into the record
Lambda's SQS event source passes (camel-case keys, message attributes as
``{"stringValue", "stringListValues", "binaryListValues", "dataType"}``, binary values
base64-encoded). `LambdaContext` mirrors the Python runtime's context. `ExecutionEnvironments`
builds a handler per thread on its first invocation (a cold start), as Lambda runs each
concurrent invocation in its own environment with its own module state.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from localrun.cfn import ACCOUNT_ID

Handler = Callable[[dict[str, Any], Any], Any]
"""Any ``handler(event, context)`` callable."""


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """The Lambda event record of one SQS message (received with all attributes)."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {}
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        raw = value["BinaryValue"]
        raw = raw.encode() if isinstance(raw, str) else bytes(raw)
        shaped["binaryValue"] = base64.b64encode(raw).decode("ascii")
    shaped["stringListValues"] = list(value.get("StringListValues") or [])
    shaped["binaryListValues"] = [
        base64.b64encode(item).decode("ascii") for item in value.get("BinaryListValues") or []
    ]
    shaped["dataType"] = value["DataType"]
    return shaped


class LambdaContext:
    """The context object of Lambda's Python runtime, for one invocation.

    `get_remaining_time_in_millis()` counts down from the function timeout. As in the real
    runtime, `memory_limit_in_mb` is a string.
    """

    def __init__(
        self,
        function_name: str,
        *,
        timeout: float,
        memory_mb: int = 128,
        region: str = "us-east-1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = str(memory_mb)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        self.log_stream_name = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self._clock = clock
        self._deadline = clock() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - self._clock()) * 1000), 0)


class ExecutionEnvironments:
    """A handler that runs each calling thread's invocations in that thread's own instance.

    `factory()` builds an instance (the cold start) the first time a thread invokes.
    """

    def __init__(self, factory: Callable[[], Handler]) -> None:
        self._factory = factory
        self._local = threading.local()
        self._lock = threading.Lock()
        self.cold_starts = 0

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        handler = getattr(self._local, "handler", None)
        if handler is None:
            handler = self._local.handler = self._factory()
            with self._lock:
                self.cold_starts += 1
        return handler(event, context)
