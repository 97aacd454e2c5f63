"""The worker benchmark must keep running: part (b) on 20 requests, no times asserted.

It runs the real worker against the moto servers the benchmark starts, and asserts the
counts the issue targets rest on (2 DynamoDB writes on the request record per request).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).with_name("bench_worker.py")


@pytest.mark.slow
def test_worker_benchmark_runs_and_counts_requests() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--only", "b", "--requests", "20"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    match = re.search(
        r"DynamoDB writes per request: ([\d.]+) on request records.*SQS requests per request: "
        r"([\d.]+)",
        done.stdout,
    )
    assert match, done.stdout
    assert float(match.group(1)) == 2.0  # the claim and the final write, nothing else
    assert float(match.group(2)) <= 0.5  # few requests: the idle polls weigh more than at 300
