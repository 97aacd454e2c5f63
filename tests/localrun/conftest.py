"""Fixtures for the local stack's tests: one moto server (a process) per test module, small
uniquely named queues per test, and the demo command run once per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localrun.server import LocalServer, LocalSession
from orchestrator.core.sqs import read_depth


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
    depth = read_depth(sqs, url)
    return depth.visible, depth.in_flight


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


def _orchestrator_command() -> list[str]:
    script = Path(sys.executable).with_name("orchestrator")
    return [str(script)] if script.exists() else [sys.executable, "-m", "orchestrator.cli"]


@pytest.fixture(scope="session")
def orchestrator_command() -> list[str]:
    """The `orchestrator` command as `make` runs it (the virtualenv's console script)."""
    return _orchestrator_command()


@dataclass(frozen=True)
class DemoRun:
    returncode: int
    stdout: str
    stderr: str
    report: Path
    stack_file: Path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`orchestrator demo` with a small count, as a real process, once for the whole session."""
    folder = tmp_path_factory.mktemp("demo")
    stack_file = folder / "stack.json"
    report = folder / "report" / "demo.html"
    command = [*_orchestrator_command(), "demo", "--count", "40", "--duplicates", "6"]
    command += ["--malformed", "6", "--retryable", "2", "--permanent", "1", "--seed", "3"]
    command += ["--call-ms", "100", "--item-ms", "20", "--rate", "100", "--high-share", "0.25"]
    command += ["--timeout", "60", "--report", str(report)]
    env = {**os.environ, "ORCHESTRATOR_STACK_FILE": str(stack_file)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    return DemoRun(done.returncode, done.stdout, done.stderr, report, stack_file)
