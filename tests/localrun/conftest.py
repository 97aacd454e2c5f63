"""Fixtures for the local stack's tests: one moto server per test module, small uniquely
named queues per test (moto's state is shared by every server in the process)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from localrun.server import LocalServer, LocalSession


@dataclass(frozen=True)
class Queue:
    url: str
    arn: str
    dead_letter_url: str | None = None


def _wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def _depth(sqs: Any, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """`wait_until(predicate, timeout=10)`: the predicate's first truthy value, or its last."""
    return _wait_until


@pytest.fixture
def depth() -> Callable[[Any, str], tuple[int, int]]:
    """`depth(sqs, url)`: (visible, in flight)."""
    return _depth


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


@pytest.fixture(scope="module")
def session(server: LocalServer) -> LocalSession:
    return LocalSession(server.endpoint_url, "us-east-1")


@pytest.fixture
def sqs(session: LocalSession) -> Any:
    return session.client("sqs", region_name="us-east-1")


@pytest.fixture
def make_queue(sqs: Any) -> Callable[..., Queue]:
    def make(visibility_timeout: int = 30, max_receive_count: int | None = None) -> Queue:
        name = f"t-{uuid.uuid4().hex[:12]}"
        attributes = {"VisibilityTimeout": str(visibility_timeout)}
        dead_letter_url = None
        if max_receive_count is not None:
            dead_letter_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(
                QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
            )
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return Queue(url, arn, dead_letter_url)

    return make
