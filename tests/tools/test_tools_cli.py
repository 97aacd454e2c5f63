"""Both tools end to end against a threaded moto server: the local stack file and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from tools_support import REGIONS, drain, free_port, write_stack_file

from orchestrator.cli import consume as consumer
from orchestrator.cli import send as producer

TOOLS = Path(__file__).resolve().parents[2] / "test-tools"
pytestmark = pytest.mark.slow  # a moto server and subprocesses: about 3 s in all


@pytest.fixture
def stack(moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request) -> dict:
    """Queues on the moto server (unique names per test) and a stack file describing them."""
    suffix = request.node.name.replace("_", "-")[-40:]
    clients = {r: boto3.client("sqs", region_name=r, endpoint_url=moto_server) for r in REGIONS}
    master = clients["us-east-1"].create_queue(QueueName=f"master-{suffix}")["QueueUrl"]
    queues = {r: clients[r].create_queue(QueueName=f"region-{suffix}")["QueueUrl"] for r in REGIONS}
    path = tmp_path / "local-stack.json"
    write_stack_file(path, moto_server, master, queues)
    monkeypatch.setenv("ORCHESTRATOR_STACK_FILE", str(path))
    return {"clients": clients, "master": master, "queues": queues, "path": path}


def test_producer_uses_the_stack_file(stack, capsys) -> None:
    assert producer.main(["--count", "3", "--batch-size", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["queue_url"] == stack["master"] and summary["sent"] == 3
    assert len(drain(stack["clients"]["us-east-1"], stack["master"])) == 3


def test_consumer_uses_the_stack_file(stack, capsys) -> None:
    for region, n in zip(REGIONS, (1, 2, 1), strict=True):
        for _ in range(n):
            stack["clients"][region].send_message(
                QueueUrl=stack["queues"][region], MessageBody="{}"
            )
    assert consumer.main(["--max-messages", "4", "--wait-seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "us-west-2: 2 messages (50.0%)" in out and "Total: 4 messages" in out


def _run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOLS / script), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=TOOLS,
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the package is installed
    env.update(extra)
    return env


def test_cli_round_trip_as_subprocesses(stack) -> None:
    master, endpoint = stack["master"], stack["clients"]["us-east-1"].meta.endpoint_url
    sent = _run(
        "producer.py",
        "--queue-url",
        master,
        "--endpoint-url",
        endpoint,
        "--count",
        "4",
        "--priority",
        "high",
        "--json",
        env=_env(),
    )
    assert sent.returncode == 0, sent.stderr
    assert len(json.loads(sent.stdout)["request_ids"]) == 4
    # stand in for the distributor: move the master messages to us-west-1 only
    west = stack["clients"]["us-west-1"]
    for message in drain(stack["clients"]["us-east-1"], master):
        west.send_message(QueueUrl=stack["queues"]["us-west-1"], MessageBody=message["Body"])
    got = _run(
        "consumer.py",
        "--max-messages",
        "4",
        "--wait-seconds",
        "1",
        "--idle-timeout",
        "3",
        env=_env(),  # the stack file gives queues and endpoint
    )
    assert got.returncode == 0, got.stderr
    assert "us-west-1: 4 messages (100.0%)" in got.stdout
    assert "high: 4" in got.stdout


@pytest.mark.parametrize("script", ["producer.py", "consumer.py"])
def test_cli_unreachable_endpoint_has_no_traceback(script: str, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    flag = "--queue-url" if script == "producer.py" else "--queue-us-east-1"
    result = _run(
        script,
        flag,
        f"{endpoint}/123456789012/q",
        "--endpoint-url",
        endpoint,
        env=_env(ORCHESTRATOR_STACK_FILE=str(tmp_path / "none.json")),
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot reach SQS at {endpoint}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
