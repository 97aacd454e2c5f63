from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.distributor.handler import App, build_distributor
from support.faults import Faults, FaultySession
from support.stack import LocalAws, Message, create_local_aws


class Clock:
    """Wall-clock seconds that a test moves by hand (leases, TTLs)."""

    def __init__(self, now: float = 1_764_670_980.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def aws(moto_session: Any) -> LocalAws:
    return create_local_aws(moto_session)


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_app(aws: LocalAws, faults: Faults, clock: Clock) -> Callable[..., App]:
    """Build the distributor as Lambda would, with faulty clients and a test clock."""

    def make(**env: str) -> App:
        return build_distributor(aws.environ(**env), FaultySession(aws.session, faults), clock)

    return make


@pytest.fixture
def app(make_app: Callable[..., App]) -> App:
    return make_app()


class HighQueues:
    """A high-priority queue beside each region queue of `aws` (as the templates create them)."""

    def __init__(self, aws: LocalAws) -> None:
        self.aws = aws
        self.urls = {
            region: aws.client("sqs", region).create_queue(
                QueueName=url.rsplit("/", 1)[-1] + "-high"
            )["QueueUrl"]
            for region, url in aws.queue_urls.items()
        }

    def environ(self) -> dict[str, str]:
        return {"HIGH_PRIORITY_QUEUES": json.dumps(self.urls)}

    def drain(self, region: str) -> list[Message]:
        return LocalAws._drain(self.aws.client("sqs", region), self.urls[region])

    def drain_all(self) -> dict[str, list[Message]]:
        return {region: self.drain(region) for region in self.urls}

    def put(self, region: str, count: int) -> None:
        """`count` high-priority messages waiting in `region` (a backlog nobody has taken)."""
        for n in range(count):
            self.aws.client("sqs", region).send_message(
                QueueUrl=self.urls[region], MessageBody=f"high-backlog-{n}"
            )


@pytest.fixture
def high(aws: LocalAws) -> HighQueues:
    return HighQueues(aws)
