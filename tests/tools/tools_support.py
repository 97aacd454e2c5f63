"""Helpers shared by the producer/consumer tests (importable, unlike conftest.py)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from orchestrator.core.sqs import receive_all

REGIONS = ("us-east-1", "us-west-2", "us-west-1")


def drain(client: Any, url: str) -> list[Any]:
    """Every message currently visible on a queue (received and hidden, not deleted)."""
    return list(receive_all(client, url))


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


def request_record(request_id: str, status: str, **fields: Any) -> Any:
    """A request record as the distributor and a worker would leave it."""
    from orchestrator.core.record import RequestRecord, RequestStatus

    values: dict[str, Any] = {
        "message_id": f"msg-{request_id}",
        "payload_hash": "0" * 64,
        "region": "us-west-2",
        "priority": "normal",
        "model_name": "gpt-l-7b",
        "forwarded_at": "2026-01-01T00:00:00.000Z",
        "lease_expires_at": 1_767_225_700,
        "expires_at": 1_769_817_600,
        **fields,
    }
    return RequestRecord(request_id=request_id, status=RequestStatus(status), **values)


def create_request_table(client: Any, name: str) -> None:
    """The request table, with the key schema the template deploys."""
    from support.template import ledger_table_definition

    client.create_table(TableName=name, **ledger_table_definition())
