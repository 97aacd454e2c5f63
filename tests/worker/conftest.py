"""The worker's AWS world in moto: a region queue with its DLQ, the request-record table, the
presence table, a results bucket, and an SNS topic with a queue subscribed to it.

`WorkerStack.send` puts requests on the region queue the way the distributor does (body
unchanged, routing attributes, a FORWARDED record first); `RunningWorker` runs the real
`Worker.serve()` on a thread and stops it the way SIGTERM would.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from orchestrator.core import presence
from orchestrator.core.record import RequestRecord, RequestStatus
from orchestrator.core.request import parse_request
from orchestrator.core.timefmt import iso_utc
from orchestrator.worker.config import WorkerSettings
from orchestrator.worker.runtime import Clients, Worker

REGION = "us-west-2"
PRIMARY = "us-east-1"
ACCOUNT = "123456789012"


def make_request(
    request_id: str | None = None,
    *,
    metadata: dict[str, Any] | None = None,
    topic: str | None = None,
    timestamp: str | None = None,
    input_url: str | None = None,
) -> dict[str, Any]:
    request_id = request_id or f"req-{uuid.uuid4().hex[:12]}"
    document: dict[str, Any] = {
        "request_id": request_id,
        "model_name": "test-model",
        "input_data_url": input_url or f"s3://inputs-bucket/{request_id}.json",
        "priority": "normal",
        "metadata": metadata or {},
    }
    if topic:
        document["callback_sns_topic"] = topic
    if timestamp:
        document["timestamp"] = timestamp
    return document


_DYNAMODB_LOCK = threading.Lock()


class AtomicClient:
    """A DynamoDB client whose calls run one at a time.

    moto evaluates a condition expression and applies the write without a lock, so two
    threads can both pass the same condition — which DynamoDB never allows. Serializing the
    calls restores DynamoDB's per-item atomicity for tests that race workers."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.meta = real.meta
        self.exceptions = real.exceptions

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with _DYNAMODB_LOCK:
                return attribute(*args, **kwargs)

        return call


@dataclass
class WorkerStack:
    session: Any
    queue_url: str
    dead_letter_queue_url: str
    table_name: str
    workers_table: str
    bucket: str
    topic_arn: str
    notification_queue_url: str
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)

    def client(self, service: str, region: str = REGION) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self.session.client(service, region_name=region)
        return self._clients[key]

    def clients(self) -> Clients:
        return Clients(
            sqs=self.session.client("sqs", region_name=REGION),
            dynamodb=AtomicClient(self.session.client("dynamodb", region_name=PRIMARY)),
            s3=self.session.client("s3", region_name=REGION),
            sns_for_region=lambda region: self.session.client("sns", region_name=region),
        )

    def settings(self, **overrides: Any) -> WorkerSettings:
        base = WorkerSettings(
            queue_url=self.queue_url,
            region=REGION,
            handler="tests:unused",
            table_name=self.table_name,
            table_region=PRIMARY,
            worker_id=f"worker-{uuid.uuid4().hex[:6]}",
            batch_size=10,
            max_wait=0.0,
            visibility_timeout=30,
            invocation_timeout=10.0,
            drain_seconds=10.0,
            max_attempts=3,
            dead_letter_queue_url=self.dead_letter_queue_url,
            http_port=None,
            results_bucket=self.bucket,
            workers_table=self.workers_table,
        )
        return replace(base, **overrides)

    # -- the distributor's side ----------------------------------------------------------------
    def forward(
        self,
        documents: Sequence[dict[str, Any]],
        *,
        copies: int = 1,
        record: bool = True,
        url: str | None = None,
    ) -> None:
        """Put each request on the region queue (or `url`: its high-priority queue) `copies`
        times, as the distributor would."""
        now = time.time()
        entries = []
        for document in documents:
            body = json.dumps(document)
            origin = f"master-{document['request_id']}"
            if record:
                self.write_forwarded(body, origin, now)
            attributes = {
                "request_id": document["request_id"],
                "priority": document.get("priority", "normal"),
                "model_name": document["model_name"],
                "origin_message_id": origin,
                "attempt": "1",
                "forwarded_at": iso_utc(now),
            }
            entries += [(body, attributes)] * copies
        sqs = self.client("sqs")
        for start in range(0, len(entries), 10):
            chunk = entries[start : start + 10]
            sqs.send_message_batch(
                QueueUrl=url or self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": body,
                        "MessageAttributes": {
                            k: {"DataType": "String", "StringValue": v} for k, v in attrs.items()
                        },
                    }
                    for i, (body, attrs) in enumerate(chunk)
                ],
            )

    def write_forwarded(self, body: str, origin: str, now: float) -> None:
        parsed = parse_request(body)
        request = parsed.request
        record = RequestRecord(
            request_id=request.request_id,
            status=RequestStatus.FORWARDED,
            message_id=origin,
            payload_hash=parsed.payload_hash,
            region=REGION,
            priority=request.priority,
            model_name=request.model_name,
            forwarded_at=iso_utc(now),
            lease_expires_at=int(now) + 60,
            expires_at=int(now) + 86_400,
            callback_sns_topic=request.callback_sns_topic,
        )
        self.client("dynamodb", PRIMARY).put_item(TableName=self.table_name, Item=record.to_item())

    # -- reading back ------------------------------------------------------------------------------
    def record(self, request_id: str) -> RequestRecord | None:
        item = (
            self.client("dynamodb", PRIMARY)
            .get_item(
                TableName=self.table_name,
                Key={"request_id": {"S": request_id}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        return None if item is None else RequestRecord.from_item(item)

    def depth(self, url: str | None = None) -> tuple[int, int]:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def drain(self, url: str, region: str = REGION) -> list[dict[str, Any]]:
        sqs = self.client("sqs", region)
        out: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not messages:
                return out
            out += messages
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )

    def dead_letters(self) -> list[dict[str, Any]]:
        return self.drain(self.dead_letter_queue_url)

    def notifications(self) -> list[dict[str, Any]]:
        return [
            json.loads(json.loads(m["Body"])["Message"])
            for m in self.drain(self.notification_queue_url, PRIMARY)
        ]

    def presence_items(self) -> list[presence.WorkerPresence]:
        return presence.live_workers(
            self.client("dynamodb", PRIMARY), self.workers_table, REGION, time.time()
        )

    def put_input(self, key: str, value: Any) -> str:
        self.client("s3").put_object(Bucket=self.bucket, Key=key, Body=json.dumps(value).encode())
        return f"s3://{self.bucket}/{key}"


def create_stack(session: Any) -> WorkerStack:
    suffix = uuid.uuid4().hex[:8]
    sqs = session.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName=f"inference-dlq-{REGION}-{suffix}")["QueueUrl"]
    queue = sqs.create_queue(QueueName=f"inference-queue-{REGION}-{suffix}")["QueueUrl"]
    ddb = session.client("dynamodb", region_name=PRIMARY)
    table = f"inference-idempotency-{suffix}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "request_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "request_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    workers = f"inference-workers-{suffix}"
    ddb.create_table(TableName=workers, **presence.table_definition())
    bucket = f"inference-results-{suffix}"
    session.client("s3", region_name=REGION).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    sns = session.client("sns", region_name=PRIMARY)
    topic = sns.create_topic(Name=f"inference-results-{suffix}")["TopicArn"]
    inbox = session.client("sqs", region_name=PRIMARY).create_queue(
        QueueName=f"notifications-{suffix}"
    )
    inbox_arn = session.client("sqs", region_name=PRIMARY).get_queue_attributes(
        QueueUrl=inbox["QueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    stack = WorkerStack(session, queue, dlq, table, workers, bucket, topic, inbox["QueueUrl"])
    return stack


@pytest.fixture
def stack(moto_session: Any) -> WorkerStack:
    return create_stack(moto_session)


class RecordingModel:
    """A model whose behaviour per request is scripted through its metadata:

    ``{"outcome": "permanent" | "retryable" | "error" | "big" | "unserializable"}`` returns the
    matching exception instance or result; ``{"fail_times": n}`` fails retryably the first n
    attempts. Every predict call is recorded (request ids, thread-safe)."""

    def __init__(self, delay: float = 0.0, per_item: float = 0.0) -> None:
        self.delay = delay
        self.per_item = per_item
        self.loaded = False
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()
        self.running = 0
        self.max_concurrent: dict[str, int] = {}

    def load(self) -> None:
        self.loaded = True

    def predict(self, requests: list[Any]) -> list[Any]:
        with self.lock:
            self.batches.append([r.request_id for r in requests])
        time.sleep(self.delay + self.per_item * len(requests))
        return [self.one(r) for r in requests]

    def one(self, request: Any) -> Any:
        from orchestrator.worker import PermanentError, RetryableError

        outcome = request.metadata.get("outcome")
        if outcome == "permanent":
            return PermanentError("bad input", "BAD_INPUT")
        if outcome == "retryable":
            return RetryableError("busy")
        if outcome == "error":
            return ValueError("model bug")
        if outcome == "big":
            return {"values": list(range(20_000))}
        if outcome == "unserializable":
            return {"x": object()}
        if request.attempt <= int(request.metadata.get("fail_times", 0)):
            return RetryableError("not yet")
        return {"echo": request.request_id, "attempt": request.attempt}

    def executions(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self.lock:
            for batch in self.batches:
                for request_id in batch:
                    counts[request_id] = counts.get(request_id, 0) + 1
        return counts


class RunningWorker:
    """`Worker.serve()` on a thread; `stop()` is a first SIGTERM, `abort()` a second."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.exit_code = self.worker.serve()

    def __enter__(self) -> RunningWorker:
        self._thread.start()
        wait_until(lambda: self.worker.ready or self.exit_code is not None, 10)
        return self

    def stop(self, timeout: float = 30) -> int | None:
        self.worker.request_stop()
        self._thread.join(timeout)
        return self.exit_code

    def abort(self, timeout: float = 30) -> int | None:
        self.worker.request_abort()
        self._thread.join(timeout)
        return self.exit_code

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.abort()


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll `condition` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def start_worker(stack: WorkerStack) -> Iterator[Callable[..., RunningWorker]]:
    running: list[RunningWorker] = []

    def start(model: Any, **overrides: Any) -> RunningWorker:
        names = (
            "retry_base_seconds",
            "poll_seconds",
            "presence_interval",
            "clock",
            "lease_margin_seconds",
        )
        kwargs = {k: overrides.pop(k) for k in names if k in overrides}
        kwargs.setdefault("retry_base_seconds", 0.0)
        kwargs.setdefault("poll_seconds", 1)
        worker = Worker(stack.settings(**overrides), model, stack.clients(), **kwargs)
        handle = RunningWorker(worker).__enter__()
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.__exit__()
