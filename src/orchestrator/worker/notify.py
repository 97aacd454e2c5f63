"""Notifications: one SNS message per request that reaches a final status, when the request
named a ``callback_sns_topic``.

The message (JSON) carries the request id, the status, the inline result or its location,
the error, the attempt, the worker and the timings. It has String attributes ``request_id``
and ``status`` so subscribers can filter. A publish is retried (`ATTEMPTS` in all, with a
short backoff) and counted; it never changes the request's outcome, which is already in its
record when the notification is sent.

The one window: a worker that dies between the final write and the publish sends nothing
(the redelivered copy finds the request final and is deleted without running). The record
is the source of truth; the notification is a convenience.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.core.errors import AWS_ERRORS, error_code, one_line
from orchestrator.core.record import RequestRecord
from orchestrator.worker.metrics import WorkerMetrics

logger = logging.getLogger(__name__)

ATTEMPTS = 3
BACKOFF_SECONDS = 0.2
MAX_MESSAGE_BYTES = 250_000  # SNS allows 256 KiB including attributes


def notification(record: RequestRecord) -> dict[str, Any]:
    """The message body for a final record."""
    body: dict[str, Any] = {
        "request_id": record.request_id,
        "status": record.status.value,
        "model_name": record.model_name,
        "region": record.region,
        "worker_id": record.worker_id,
        "attempt": record.attempt,
        "timings": {
            "queued_at": record.queued_at,
            "forwarded_at": record.forwarded_at or None,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
        },
    }
    if record.result is not None:
        body["result"] = json.loads(record.result)
    if record.result_location is not None:
        body["result_location"] = record.result_location
    if record.error_code is not None:
        body["error"] = {"code": record.error_code, "message": record.error_message or ""}
    return body


def topic_region(topic_arn: str) -> str | None:
    parts = topic_arn.split(":")
    return parts[3] if len(parts) >= 6 and parts[2] == "sns" else None


class Notifier:
    """Publishes notifications; one SNS client per topic region, built on first use."""

    def __init__(
        self,
        client_for_region: Callable[[str], Any],
        default_region: str,
        metrics: WorkerMetrics | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self._client_for_region = client_for_region
        self._default_region = default_region
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._metrics = metrics
        self._sleep = sleep

    def _client(self, topic_arn: str) -> Any:
        region = topic_region(topic_arn) or self._default_region
        with self._lock:
            if region not in self._clients:
                self._clients[region] = self._client_for_region(region)
            return self._clients[region]

    def notify(self, topic_arn: str, record: RequestRecord) -> bool:
        """Publish the notification for `record`; True once SNS accepted it."""
        body = notification(record)
        message = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        if len(message.encode()) > MAX_MESSAGE_BYTES:
            body.pop("result", None)
            body["result_in_record"] = True
            message = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        attributes: Mapping[str, Any] = {
            "request_id": {"DataType": "String", "StringValue": record.request_id},
            "status": {"DataType": "String", "StringValue": record.status.value},
        }
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._client(topic_arn).publish(
                    TopicArn=topic_arn, Message=message, MessageAttributes=attributes
                )
            except AWS_ERRORS as exc:
                logger.warning(
                    "notification of %s to %s failed (attempt %d of %d): %s",
                    record.request_id,
                    topic_arn,
                    attempt,
                    ATTEMPTS,
                    one_line(exc),
                    extra={"request_id": record.request_id, "error_code": error_code(exc)},
                )
                if self._metrics is not None:
                    self._metrics.notifications.labels(
                        "retried" if attempt < ATTEMPTS else "failed"
                    ).inc()
                if attempt < ATTEMPTS:
                    self._sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            if self._metrics is not None:
                self._metrics.notifications.labels("sent").inc()
            return True
        return False
