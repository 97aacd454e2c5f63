"""Helpers shared by the producer/consumer tests (importable, unlike conftest.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

REGIONS = ("us-east-1", "us-west-2", "us-west-1")


def drain(client: Any, url: str) -> list[dict[str, Any]]:
    """Every message currently visible on a queue (received, not deleted)."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_stack_file(path: Path, endpoint: str, master_url: str, queues: dict[str, str]) -> None:
    path.write_text(
        json.dumps(
            {
                "endpoint_url": endpoint,
                "primary_region": "us-east-1",
                "master_queue_url": master_url,
                "dead_letter_queue_url": master_url + "-dlq",
                "table_name": "inference-idempotency-dev",
                "region_queues": queues,
            }
        )
    )
