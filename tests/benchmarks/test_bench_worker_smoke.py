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


@pytest.mark.slow
def test_batching_benchmark_runs_every_configuration() -> None:
    """Part (a) on a tiny backlog: every configuration runs on both topologies and prints
    its row (throughput, share of the model's limit, ratio to batch 1, each round)."""
    done = subprocess.run(
        [
            *(sys.executable, str(BENCH), "--only", "a"),
            *("--requests", "20", "--repeats", "1", "--paced-seconds", "1", "--rate", "4"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = re.findall(r"^\s+(\d+)\s+(\d)\s+([\d.]+)\s+([\d.]+)\s+(\d+)%", done.stdout, re.M)
    configurations = [(int(size), int(prefetch)) for size, prefetch, *_ in rows]
    assert configurations == [(1, 2), (4, 2), (10, 2), (10, 1)] * 2, done.stdout
    for _size, _prefetch, mean_batch, throughput, _share in rows:
        assert float(mean_batch) >= 1 and float(throughput) > 0
