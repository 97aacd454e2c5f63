"""Both tools end to end against a threaded moto server: the local stack file and the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from tools_support import (
    REGIONS,
    create_request_table,
    drain,
    free_port,
    request_record,
    write_stack_file,
)

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


def test_a_local_queue_url_without_endpoint_goes_to_that_host(stack, tmp_path: Path) -> None:
    """No --endpoint-url and no stack file: the endpoint is the queue URL's own host."""
    env = _env(ORCHESTRATOR_STACK_FILE=str(tmp_path / "none.json"))
    sent = _run("producer.py", "--queue-url", stack["master"], "--count", "2", env=env)
    assert sent.returncode == 0, sent.stderr
    assert len(drain(stack["clients"]["us-east-1"], stack["master"])) == 2
    west = stack["queues"]["us-west-2"]
    stack["clients"]["us-west-2"].send_message(QueueUrl=west, MessageBody="{}")
    got = _run(
        "consumer.py", "--queue", f"us-west-2={west}", "--wait-seconds", "0", "--idle-timeout",
        "1", env=env,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert "us-west-2: 1 messages (100.0%)" in got.stdout


@pytest.mark.parametrize("script", ["producer.py", "consumer.py"])
def test_cli_endpoint_without_scheme_is_one_line_exit_2(script: str, tmp_path: Path) -> None:
    flag = "--queue-url" if script == "producer.py" else "--queue-us-east-1"
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/q"
    env = _env(ORCHESTRATOR_STACK_FILE=str(tmp_path / "none.json"))
    result = _run(script, flag, url, "--endpoint-url", "127.0.0.1:1234", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: argument --endpoint-url: must be a URL starting with")
    assert result.stderr.count("\n") == 1 and result.stdout == ""


@pytest.mark.parametrize("script", ["producer.py", "consumer.py"])
def test_cli_ctrl_c_during_start_up_is_one_line_exit_130(script: str, tmp_path: Path) -> None:
    """Ctrl-C while the start-up check waits on an endpoint that accepts and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        flag = "--queue-url" if script == "producer.py" else "--queue-us-east-1"
        process = subprocess.Popen(
            [sys.executable, str(TOOLS / script), flag, f"{endpoint}/123456789012/q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(ORCHESTRATOR_STACK_FILE=str(tmp_path / "none.json")),
        )
        listener.settimeout(20)
        connection, _ = listener.accept()  # the tool is now inside its first call
        with connection:
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=20)
    assert process.returncode == 130
    assert err == "error: interrupted\n" and out == ""


def test_status_command_reads_the_record_from_the_stack(stack, moto_server: str) -> None:
    """`orchestrator status` as installed: the entry point, the stack file's table and endpoint."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_server)
    name = f"requests-{uuid.uuid4().hex[:8]}"
    create_request_table(dynamodb, name)
    record = request_record("req-cli-1", "RUNNING", worker_id="gpu-7", attempt=1)
    dynamodb.put_item(TableName=name, Item=record.to_item())
    document = json.loads(stack["path"].read_text())
    stack["path"].write_text(json.dumps({**document, "table_name": name}))
    env = _env(ORCHESTRATOR_STACK_FILE=str(stack["path"]))
    found = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "status", "req-cli-1", "--json"],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == record.as_dict()
    missing = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "status", "req-nope"],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr == f"error: no request 'req-nope' in table {name} (us-east-1)\n"


@pytest.mark.parametrize("command", ["send", "consume", "status"])
def test_help_shows_an_example_and_the_exit_statuses(command: str, capsys) -> None:
    from orchestrator.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    examples = out[out.index("examples:") :]
    assert f"orchestrator {command} " in examples
    assert "exit status:" in out and "--plain" in out


@pytest.mark.parametrize(
    ("module", "heading"), [(producer, "## producer.py"), (consumer, "## consumer.py")]
)
def test_readme_documents_every_flag(module, heading: str) -> None:
    readme = (TOOLS / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(heading) :]
    section = section[: section.find("\n## ", 1)]
    options = {
        option
        for action in module.build_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert {option for option in options if f"`{option}" not in section} == set()


def test_readme_lists_every_malformed_kind_the_producer_sends() -> None:
    from orchestrator.cli.malformed import BY_KIND, TRAFFIC_KINDS

    readme = (TOOLS / "README.md").read_text(encoding="utf-8")
    for kind in TRAFFIC_KINDS:
        assert f"| {kind} | `{BY_KIND[kind].error_code}` |" in readme, kind


def test_rich_is_loaded_only_for_a_terminal_display() -> None:
    """rich is the command-line tool's dependency: importing the commands (plain runs, CI) or
    the Lambda's handler does not load it."""
    modules = [
        "orchestrator.cli.main",
        "orchestrator.cli.send",
        "orchestrator.cli.consume",
        "orchestrator.cli.status",
        "orchestrator.distributor.handler",
    ]
    code = (
        f"import sys; import {', '.join(modules)}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
