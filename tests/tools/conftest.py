"""Fixtures for the producer/consumer tests: moto (in-process) and a threaded moto server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer
from tools_support import REGIONS

MASTER_QUEUE = "inference-master-queue-dev"


@pytest.fixture(autouse=True)
def _isolated_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real credentials, no endpoint overrides, and no stack file from a running `make local`."""
    monkeypatch.setenv("ORCHESTRATOR_STACK_FILE", str(tmp_path / "no-local-stack.json"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def master(aws: None) -> tuple[Any, str]:
    client = boto3.client("sqs", region_name="us-east-1")
    url = client.create_queue(QueueName=MASTER_QUEUE)["QueueUrl"]
    return client, url


@pytest.fixture
def region_queues(aws: None) -> dict[str, tuple[Any, str]]:
    """region -> (client of that region, queue url)."""
    queues = {}
    for region in REGIONS:
        client = boto3.client("sqs", region_name=region)
        url = client.create_queue(QueueName=f"inference-queue-{region}-dev")["QueueUrl"]
        queues[region] = (client, url)
    return queues


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
