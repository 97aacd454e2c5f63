"""`make local`: a long-running stack that advertises itself, distributes, and stops cleanly
on SIGINT (run as a real process, as a developer runs it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from localrun.console import parse_capacities, plain_line
from localrun.depths import Depth
from localrun.server import LocalSession

ROOT = Path(__file__).resolve().parents[2]
SRC = os.pathsep.join([str(ROOT / "src"), str(ROOT / "test-tools")])


def test_plain_line_and_capacities() -> None:
    depths = {"master": Depth(1, 2), "us-east-1": Depth(3, 4)}
    line = plain_line(depths, {"us-east-1": 7}, {"us-east-1": 5}, "invocations 2")
    assert line == "master 1+2 | us-east-1 3+4 fwd 7 done 5 | invocations 2"
    assert parse_capacities("us-east-1=4, us-west-2=2") == {"us-east-1": 4, "us-west-2": 2}


@pytest.mark.slow
def test_local_stack_serves_until_sigint(tmp_path: Path, wait_until: Any, depth: Any) -> None:
    stack_file = tmp_path / "stack.json"
    env = {
        **os.environ,
        "ORCHESTRATOR_STACK_FILE": str(stack_file),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localrun.console",
            "--plain",
            "--workers",
            "us-east-1=1,us-west-2=1,us-west-1=1",
            "--log",
            str(tmp_path / "distributor.log"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert wait_until(stack_file.exists, timeout=20), "no stack file"
        document = json.loads(stack_file.read_text())
        session = LocalSession(document["endpoint_url"])
        queues = [(session.client("sqs", region_name="us-east-1"), document["master_queue_url"])]
        queues += [
            (session.client("sqs", region_name=region), url)
            for region, url in document["region_queues"].items()
        ]
        body = {"request_id": "local-1", "model_name": "m", "input_data_url": "s3://bkt/k"}
        queues[0][0].send_message(QueueUrl=queues[0][1], MessageBody=json.dumps(body))
        # Forwarded before it leaves the master queue, deleted by a worker once done: the
        # request is somewhere in these queues until it has been processed.
        assert wait_until(lambda: sum(sum(depth(c, url)) for c, url in queues) == 0, timeout=15)
        time.sleep(1.5)  # one more table refresh
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert f"export AWS_ENDPOINT_URL={document['endpoint_url']}" in output
    assert "export AWS_ACCESS_KEY_ID=testing" in output
    assert "fwd 1 done 1" in output
    assert "local stack stopped" in output
    assert not stack_file.exists()
