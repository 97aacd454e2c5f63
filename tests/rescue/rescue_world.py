"""Test helpers: the rescue function against moto: three regions, one queue each (and a
high-priority queue each once `add_high_queues` is called), the request table.

Requests are put where the distributor would have put them: a message in a region queue with
the routing attributes, and a FORWARDED record naming that region. A region "has a worker"
when a message of it is held invisible (in flight), as a busy GPU worker holds one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.attributes import (
    MessageAttribute,
    RoutingAttributes,
    carry_client_attributes,
    client_attributes,
)
from orchestrator.core.record import RequestRecord, RequestStatus
from orchestrator.rescue.handler import App, build_rescue
from support.faults import Faults, FaultySession
from support.stack import REGIONS, LocalAws

NOW = 1_764_670_980.0
STALLED, HEALTHY_A, HEALTHY_B = "us-west-1", "us-east-1", "us-west-2"
assert {STALLED, HEALTHY_A, HEALTHY_B} == set(REGIONS)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Received:
    """A message read back from a queue."""

    body: str
    request_id: str | None
    attempt: int | None
    client: dict[str, MessageAttribute]
    raw: dict[str, Any]


@dataclass
class World:
    aws: LocalAws
    faults: Faults
    clock: Clock
    ages: dict[str, float] = field(default_factory=dict)
    """Oldest-message age per lane key (region, or region:high), as CloudWatch would say."""
    high_urls: dict[str, str] = field(default_factory=dict)
    """Each region's high-priority queue, once `add_high_queues` made them."""

    def sqs(self, region: str) -> Any:
        return self.aws.client("sqs", region)

    def add_high_queues(self) -> dict[str, str]:
        for region, url in self.aws.queue_urls.items():
            name = url.rsplit("/", 1)[-1] + "-high"
            self.high_urls[region] = self.sqs(region).create_queue(QueueName=name)["QueueUrl"]
        return self.high_urls

    def url(self, region: str, high: bool = False) -> str:
        return self.high_urls[region] if high else self.aws.queue_urls[region]

    def app(self, **env: str) -> App:
        high = {"HIGH_PRIORITY_QUEUES": json.dumps(self.high_urls)} if self.high_urls else {}
        environ = self.aws.environ(
            **{"RESCUE_STALL_SECONDS": "0", "RESCUE_MAX_AGE_SECONDS": "600", **high, **env}
        )
        return build_rescue(
            environ,
            FaultySession(self.aws.session, self.faults),
            self.clock,
            ages=lambda region, _now: self.ages.get(region),
        )

    def seed(
        self,
        region: str,
        count: int,
        *,
        status: RequestStatus = RequestStatus.FORWARDED,
        client: Mapping[str, MessageAttribute] | None = None,
        run_lease_expires_at: int | None = None,
        high: bool = False,
        model_name: str = "gpt-l-7b",
        allowed_regions: list[str] | None = None,
    ) -> list[str]:
        """`count` forwarded requests waiting in `region` (its high-priority queue when
        `high`), with their records."""
        body_fields: dict[str, Any] = {"model_name": model_name}
        if allowed_regions is not None:
            body_fields["allowed_regions"] = allowed_regions
        priority = "high" if high else "normal"
        ids = [f"req-{uuid.uuid4().hex[:12]}" for _ in range(count)]
        for start in range(0, count, 10):
            entries = []
            for index, request_id in enumerate(ids[start : start + 10]):
                attributes = {
                    **RoutingAttributes(
                        request_id,
                        priority,
                        model_name,
                        f"m-{request_id}",
                        1,
                        "2025-12-01T00:00:00.000Z",
                    ).to_attributes(),
                    **carry_client_attributes(client or {}),
                }
                entries.append(
                    {
                        "Id": str(index),
                        "MessageBody": json.dumps({"request_id": request_id, **body_fields}),
                        "MessageAttributes": {n: a.to_sqs() for n, a in attributes.items()},
                    }
                )
            self.sqs(region).send_message_batch(QueueUrl=self.url(region, high), Entries=entries)
        table = self.aws.client("dynamodb")
        for request_id in ids:
            record = RequestRecord(
                request_id=request_id,
                status=status,
                message_id=f"m-{request_id}",
                payload_hash="h",
                region=region,
                priority=priority,
                model_name=model_name,
                forwarded_at="2025-12-01T00:00:00.000Z",
                lease_expires_at=int(NOW),
                expires_at=int(NOW) + 86_400,
                run_lease_expires_at=run_lease_expires_at,
            )
            table.put_item(TableName=self.aws.table_name, Item=record.to_item())
        return ids

    def give_worker(self, region: str, high: bool = False) -> None:
        """A busy worker in `region`: one message held in flight for the whole test (from
        the high-priority queue when `high`)."""
        url = self.url(region, high)
        self.sqs(region).send_message(QueueUrl=url, MessageBody="busy")
        held = self.sqs(region).receive_message(QueueUrl=url, VisibilityTimeout=3600)
        assert held.get("Messages"), "the worker's message was not received"

    def read(self, region: str, visibility: int = 60, high: bool = False) -> list[Received]:
        """Every visible message of `region` (hidden afterwards), the worker's excluded."""
        out: list[Received] = []
        url = self.url(region, high)
        while True:
            batch = (
                self.sqs(region)
                .receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=visibility,
                    MessageAttributeNames=["All"],
                )
                .get("Messages", [])
            )
            if not batch:
                return out
            for message in batch:
                if message["Body"] == "busy":
                    continue
                routing = RoutingAttributes.from_message(message)
                out.append(
                    Received(
                        message["Body"],
                        routing.request_id if routing else None,
                        routing.attempt if routing else None,
                        client_attributes(message),
                        message,
                    )
                )

    def depth(self, region: str, high: bool = False) -> tuple[int, int]:
        attributes = self.sqs(region).get_queue_attributes(
            QueueUrl=self.url(region, high),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def record(self, request_id: str) -> RequestRecord:
        item = self.aws.client("dynamodb").get_item(
            TableName=self.aws.table_name,
            Key={"request_id": {"S": request_id}},
            ConsistentRead=True,
        )["Item"]
        return RequestRecord.from_item(item)

    def calls(self, operation: str, region: str | None = None) -> int:
        return sum(
            1
            for _service, op, call_region in self.faults.calls
            if op == operation and region in (None, call_region)
        )
