"""`orchestrator local` (`make local`): what it tells another terminal, its table, and the
stack as a real process: it advertises itself, distributes, answers the AWS CLI commands it
prints, leaves a second stack's files alone, and stops cleanly on SIGINT."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path
from typing import IO, Any

import pytest

from localrun.console import parse_args, parse_capacities
from localrun.console_view import (
    LiveView,
    PlainView,
    RegionWorkers,
    Snapshot,
    make_view,
    plain_line,
    render_table,
)
from localrun.hints import aws_cli_commands, banner, exports, stack_files, tool_commands
from localrun.server import LocalSession
from orchestrator.core.sqs import QueueDepth
from orchestrator.core.stackfile import LocalStack

STACK = LocalStack(
    path=Path("/repo/.local-stack.json"),
    endpoint_url="http://127.0.0.1:4566",
    primary_region="us-east-1",
    master_queue_url="http://127.0.0.1:4566/123456789012/master",
    dead_letter_queue_url="http://127.0.0.1:4566/123456789012/master-dlq",
    table_name="ledger",
    region_queues={
        "us-east-1": "http://127.0.0.1:4566/123456789012/q-east-1",
        "us-west-2": "http://127.0.0.1:4566/123456789012/q-west-2",
    },
)


def snapshot(**changes: Any) -> Snapshot:
    values: dict[str, Any] = {
        "depths": {
            "master": QueueDepth(1, 2),
            "us-east-1": QueueDepth(3, 4),
            "dead-letter": QueueDepth(0, 0),
        },
        "forwarded": {"us-east-1": 7},
        "processed": {"us-east-1": 5},
        "counts": "invocations 2 (0 failed)",
        "uptime": 75,
    }
    values.update(changes)
    return Snapshot(**values)


# -- what another terminal is told ------------------------------------------------------------


def test_the_first_stack_uses_the_shared_files_and_a_second_gets_its_own(tmp_path: Path) -> None:
    shared = tmp_path / ".local-stack.json"
    reports = tmp_path / "reports"
    first = stack_files(shared, True, "http://127.0.0.1:4566", reports, None)
    assert (first.stack_file, first.log, first.shared) == (
        shared,
        reports / "local-distributor.log",
        True,
    )
    assert (first.rescue_log, first.workers) == (
        reports / "local-rescue.log",
        reports / "local-workers",
    )
    second = stack_files(shared, False, "http://127.0.0.1:5000", reports, None)
    assert second.stack_file == reports / "local-stack-5000.json"
    assert second.log == reports / "local-distributor-5000.log"  # the first one's is left alone
    assert second.rescue_log == reports / "local-rescue-5000.log"
    assert second.workers == reports / "local-workers-5000"
    assert stack_files(shared, False, "http://h:1", reports, tmp_path / "x.log").log == (
        tmp_path / "x.log"
    )
    # The second stack's hints drive the second stack, not the one holding the shared file.
    assert tool_commands(second)[0] == (
        f"ORCHESTRATOR_STACK_FILE={second.stack_file} orchestrator send --count 30"
    )
    assert tool_commands(first)[0] == "orchestrator send --count 30"
    topic = "arn:aws:sns:us-east-1:123456789012:inference-callback-local"
    assert f"orchestrator send --count 5 --wait --callback-sns-topic {topic}" in tool_commands(
        first, topic
    )
    assert "orchestrator status REQUEST_ID" in tool_commands(first)


def test_exports_name_the_stack_file_and_every_queue() -> None:
    lines = exports(STACK)
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:4566" in lines
    assert "export AWS_ACCESS_KEY_ID=testing" in lines
    assert "export ORCHESTRATOR_STACK_FILE=/repo/.local-stack.json" in lines
    assert f"export QUEUE_US_WEST_2={STACK.region_queues['us-west-2']}" in lines
    region_queues = next(line for line in lines if line.startswith("export REGION_QUEUES="))
    assert json.loads(shlex.split(region_queues.split("=", 1)[1])[0]) == STACK.region_queues


def test_exports_and_aws_commands_name_the_high_priority_queues() -> None:
    high = {region: url + "-high" for region, url in STACK.region_queues.items()}
    lines = exports(STACK, high)
    assert f"export HIGH_QUEUE_US_WEST_2={high['us-west-2']}" in lines
    exported = next(line for line in lines if line.startswith("export HIGH_PRIORITY_QUEUES="))
    assert json.loads(shlex.split(exported.split("=", 1)[1])[0]) == high
    _, *depths = aws_cli_commands(STACK, high)
    assert len(depths) == 4
    assert (
        f"--region us-west-2 sqs get-queue-attributes --queue-url {high['us-west-2']}"
        in (depths[-1])
    )
    assert not any("HIGH" in line for line in exports(STACK))  # none without them


def test_aws_cli_commands_carry_the_endpoint_and_each_queues_own_region() -> None:
    send, *depths = aws_cli_commands(STACK)
    assert send.startswith("aws --endpoint-url http://127.0.0.1:4566 --region us-east-1 sqs ")
    assert f"send-message --queue-url {STACK.master_queue_url}" in send
    body = shlex.split(send)[-1]
    assert json.loads(body)["request_id"]  # a valid request, quoted for the shell
    for (region, url), command in zip(STACK.region_queues.items(), depths, strict=True):
        assert command.startswith(f"aws --endpoint-url http://127.0.0.1:4566 --region {region} ")
        assert f"get-queue-attributes --queue-url {url}" in command
    text = "\n".join(banner(STACK, stack_files(STACK.path, True, "", Path("r"), None), []))
    assert "v1 ignores AWS_ENDPOINT_URL" in text and "--region" in text


# -- the table --------------------------------------------------------------------------------


def test_plain_lines_and_capacities() -> None:
    depths = {"master": QueueDepth(1, 2), "us-east-1": QueueDepth(3, 4)}
    line = plain_line(depths, {"us-east-1": 7}, {"us-east-1": 5}, "invocations 2")
    assert line == "master 1+2 | us-east-1 3+4 fwd 7 done 5 | invocations 2"
    workers = {"us-east-1": RegionWorkers(live=4, capacity=24, busy=5, draining=1)}
    line = plain_line(depths, {"us-east-1": 7}, {"us-east-1": 5}, "invocations 2", workers)
    assert "us-east-1 3+4 fwd 7 done 5 workers 4 (1 draining) cap 24 busy 5 |" in line
    # A region's high-priority queue: its depth and forwards; done and workers are the
    # region's (its workers serve both queues), shown once, on the standard queue.
    depths = {"us-east-1": QueueDepth(3, 4), "us-east-1 high": QueueDepth(1, 0)}
    forwarded = {"us-east-1": 7, "us-east-1 high": 2}
    line = plain_line(depths, forwarded, {"us-east-1": 9}, "invocations 2", workers)
    assert line.startswith("us-east-1 3+4 fwd 7 done 9 workers 4 (1 draining) cap 24 busy 5 | ")
    assert "| us-east-1 high 1+0 fwd 2 | invocations 2" in line
    assert parse_capacities("us-east-1=4, us-west-2=2") == {"us-east-1": 4, "us-west-2": 2}
    for bad in ("mars-central-9=1", "us-east-1=many", "us-east-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_capacities(bad)


def test_a_bad_workers_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--workers", "us-east-1=x"])
    assert exit_.value.code == 2
    assert "whole number" in capsys.readouterr().err


def test_workers_run_by_default_as_the_demo_runs_them() -> None:
    assert parse_args([]).workers == {"us-east-1": 4, "us-west-2": 2, "us-west-1": 1}
    assert parse_args(["--workers", "us-west-2=3"]).workers == {"us-west-2": 3}
    assert parse_args(["--no-workers"]).workers is None
    assert parse_args([]).rescue_every == 5
    assert parse_args(["--no-workers"]).rescue_every == 0  # it would only shuffle backlogs
    assert parse_args(["--no-workers", "--rescue-every", "2"]).rescue_every == 2
    options = parse_args(["--rescue-every", "0", "--rescue-stall", "4"])
    assert (options.rescue_every, options.rescue_stall) == (0, 4)
    with pytest.raises(SystemExit):
        parse_args(["--workers", "us-west-2=3", "--no-workers"])


def test_plain_view_prints_a_line_only_when_something_changed() -> None:
    out = io.StringIO()
    now = [0.0]
    view = PlainView(out, clock=lambda: now[0])
    view.show(snapshot())
    view.show(snapshot(uptime=76))  # the uptime alone is not a change
    view.show(snapshot(forwarded={"us-east-1": 8}))
    now[0] = 120.0
    view.show(snapshot(forwarded={"us-east-1": 8}))  # a heartbeat after a quiet minute
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "us-east-1 3+4 fwd 8 done 5" in lines[1]
    view.show(snapshot(problem="pollers stopped: TypeError: x"))
    assert out.getvalue().splitlines()[-1].endswith("| pollers stopped: TypeError: x")


def test_the_live_table_shows_every_queue_and_the_footer() -> None:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(
        render_table(snapshot(problem="depth read failed: gone"))
    )
    text = out.getvalue()
    assert text.split()[:5] == ["queue", "waiting", "in", "flight", "forwarded"]
    assert any(line.split() == ["us-east-1", "3", "4", "7", "5"] for line in text.splitlines())
    out = io.StringIO()
    workers = {"us-east-1": RegionWorkers(live=2, capacity=16, busy=3)}
    Console(file=out, width=120, color_system=None).print(render_table(snapshot(workers=workers)))
    header, *rows = out.getvalue().splitlines()
    assert header.split()[-3:] == ["workers", "capacity", "busy"]
    assert any(row.split() == ["us-east-1", "3", "4", "7", "5", "2", "16", "3"] for row in rows)
    out = io.StringIO()
    high = snapshot(
        workers=workers,
        depths={"us-east-1": QueueDepth(3, 4), "us-east-1 high": QueueDepth(1, 0)},
        forwarded={"us-east-1": 7, "us-east-1 high": 2},
    )
    Console(file=out, width=120, color_system=None).print(render_table(high))
    rows = out.getvalue().splitlines()
    assert any(row.split() == ["us-east-1", "high", "1", "0", "2"] for row in rows)
    assert "invocations 2 (0 failed) · up 01:15" in text
    assert "depth read failed: gone" in text


def test_a_live_table_on_a_terminal_plain_lines_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_view(Terminal(), plain=False), LiveView)
    assert isinstance(make_view(Terminal(), plain=True), PlainView)
    assert isinstance(make_view(io.StringIO(), plain=False), PlainView)


# -- as a real process ------------------------------------------------------------------------


def start_local(command: list[str], tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ORCHESTRATOR_STACK_FILE": str(tmp_path / "stack.json")}
    command = [*command, "local", "--plain", "--reports", str(tmp_path), *extra]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def read_banner(stream: IO[str]) -> list[str]:
    lines: list[str] = []
    while not lines or lines[-1] != "# Ctrl-C stops it.":
        line = stream.readline()
        if not line:
            raise AssertionError("the process ended before its banner:\n" + "".join(lines))
        lines.append(line.rstrip("\n"))
    return lines


def aws_command(banner_lines: list[str], verb: str) -> list[str]:
    line = next(line.strip() for line in banner_lines if f" sqs {verb} " in line)
    return shlex.split(line)


@pytest.mark.slow
def test_local_stack_serves_until_sigint(
    tmp_path: Path, wait_until: Any, depth: Any, orchestrator_command: list[str]
) -> None:
    stack_file = tmp_path / "stack.json"
    workers = ("--workers", "us-east-1=1,us-west-2=1,us-west-1=1")
    first = start_local(orchestrator_command, tmp_path, *workers)
    second = None
    try:
        assert first.stdout is not None
        lines = read_banner(first.stdout)
        document = json.loads(stack_file.read_text())
        session = LocalSession(document["endpoint_url"])
        queues = [(session.client("sqs", region_name="us-east-1"), document["master_queue_url"])]
        queues += [
            (session.client("sqs", region_name=region), url)
            for region, url in document["region_queues"].items()
        ]
        # The stack file has no high-priority queues; the banner exports them.
        exported = next(line for line in lines if line.startswith("export HIGH_PRIORITY_QUEUES="))
        high = json.loads(shlex.split(exported.split("=", 1)[1])[0])
        assert set(high) == set(document["region_queues"])
        queues += [(session.client("sqs", region_name=r), url) for r, url in high.items()]
        send = aws_command(lines, "send-message")
        body = send[send.index("--message-body") + 1]
        if shutil.which("aws"):  # the printed command, with the AWS CLI installed here
            subprocess.run(send, check=True, capture_output=True, timeout=60)
        else:
            queues[0][0].send_message(QueueUrl=queues[0][1], MessageBody=body)
        urgent = {**json.loads(body), "request_id": "urgent-1", "priority": "high"}
        queues[0][0].send_message(QueueUrl=queues[0][1], MessageBody=json.dumps(urgent))
        # Forwarded before it leaves the master queue, deleted by a worker once done: the
        # request is somewhere in these queues until it has been processed.
        assert wait_until(lambda: sum(sum(depth(c, url)) for c, url in queues) == 0, timeout=15)
        if shutil.which("aws"):  # a region queue answers in its own region
            read = aws_command(lines, "get-queue-attributes")
            done = subprocess.run(read, check=True, capture_output=True, text=True, timeout=60)
            assert json.loads(done.stdout)["Attributes"]["ApproximateNumberOfMessages"] == "0"
        log = tmp_path / "local-distributor.log"
        assert wait_until(lambda: "batch distributed" in log.read_text())
        written = log.read_text()

        # While the first one runs; without workers (seven more processes would add nothing).
        second = start_local(orchestrator_command, tmp_path, "--no-workers")
        assert second.stdout is not None
        second_lines = read_banner(second.stdout)
        second.send_signal(signal.SIGINT)
        second_output = "\n".join(second_lines) + second.communicate(timeout=20)[0]
    finally:
        for process in (p for p in (second, first) if p is not None and p.poll() is None):
            process.send_signal(signal.SIGINT)
        output, _ = first.communicate(timeout=20)
    output = "\n".join(lines) + output
    assert first.returncode == 0, output
    assert f"export AWS_ENDPOINT_URL={document['endpoint_url']}" in output
    assert "export AWS_ACCESS_KEY_ID=testing" in output
    # forwarded, run (both queues: the urgent one may have run in the same region), workers
    assert re.search(r"fwd 1 done [12] workers 1 cap 8 busy", output), output
    assert re.search(r"\| us-[a-z]+-\d high 0\+0 fwd 1 \|", output), output  # the urgent one
    assert "# logs: distributor " in output and "local-workers/" in output
    assert "stopping: pollers, rescue, workers (SIGTERM: they drain), server" in output
    worker_logs = list((tmp_path / "local-workers").glob("*.log"))
    assert len(worker_logs) == 3
    assert all('"message": "drained; exiting"' in log.read_text() for log in worker_logs)
    assert "local stack stopped" in output
    assert not stack_file.exists()
    # The second stack wrote its own files, pointed its hints at them, and left the first's.
    assert second.returncode == 0, second_output
    assert "another local stack holds the default stack file" in second_output
    assert "ORCHESTRATOR_STACK_FILE=" in second_output and "local-stack-" in second_output
    assert log.read_text().startswith(written)
    assert list(tmp_path.glob("local-distributor-*.log"))
    assert not list(tmp_path.glob("local-stack-*.json"))  # removed when it stopped
