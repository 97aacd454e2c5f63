"""The distributor's AWS resources, created in moto: three region queues, a DLQ, the ledger."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from support.template import ledger_table_definition

REGIONS = ("us-east-1", "us-west-2", "us-west-1")
PRIMARY = "us-east-1"


@dataclass
class Message:
    body: str
    attributes: dict[str, str]
    message_id: str

    @property
    def request_id(self) -> str:
        return self.attributes.get("request_id") or json.loads(self.body)["request_id"]


@dataclass
class LocalAws:
    session: Any
    queue_urls: dict[str, str]
    dead_letter_queue_url: str
    table_name: str
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)

    def client(self, service: str, region: str = PRIMARY) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self.session.client(service, region_name=region)
        return self._clients[key]

    def environ(self, **overrides: str) -> dict[str, str]:
        env = {
            "REGION_QUEUES": json.dumps(self.queue_urls),
            "IDEMPOTENCY_TABLE_NAME": self.table_name,
            "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue_url,
            "AWS_REGION": PRIMARY,
            "CACHE_TTL": "10",
            "LOG_LEVEL": "WARNING",
        }
        env.update(overrides)
        return env

    def drain(self, region: str) -> list[Message]:
        return self._drain(self.client("sqs", region), self.queue_urls[region])

    def drain_all(self) -> dict[str, list[Message]]:
        return {region: self.drain(region) for region in self.queue_urls}

    def dead_letters(self) -> list[Message]:
        return self._drain(self.client("sqs"), self.dead_letter_queue_url)

    def ledger_item(self, request_id: str) -> dict[str, Any] | None:
        item = (
            self.client("dynamodb")
            .get_item(
                TableName=self.table_name,
                Key={"request_id": {"S": request_id}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        if item is None:
            return None
        return {k: next(iter(v.values())) for k, v in item.items()}

    def depth(self, region: str) -> int:
        attrs = self.client("sqs", region).get_queue_attributes(
            QueueUrl=self.queue_urls[region], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    @staticmethod
    def _drain(sqs: Any, url: str) -> list[Message]:
        out: list[Message] = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not messages:
                return out
            for m in messages:
                attributes = {
                    k: v.get("StringValue", "") for k, v in m.get("MessageAttributes", {}).items()
                }
                out.append(Message(m["Body"], attributes, m["MessageId"]))
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )


def create_local_aws(session: Any) -> LocalAws:
    """Create uniquely named resources (so suites may share one moto server)."""
    suffix = uuid.uuid4().hex[:8]
    urls = {
        region: session.client("sqs", region_name=region).create_queue(
            QueueName=f"inference-queue-{region}-{suffix}"
        )["QueueUrl"]
        for region in REGIONS
    }
    dlq = session.client("sqs", region_name=PRIMARY).create_queue(
        QueueName=f"inference-master-dlq-{suffix}"
    )["QueueUrl"]
    table_name = f"inference-idempotency-{suffix}"
    session.client("dynamodb", region_name=PRIMARY).create_table(
        TableName=table_name, **ledger_table_definition()
    )
    return LocalAws(session, urls, dlq, table_name)
