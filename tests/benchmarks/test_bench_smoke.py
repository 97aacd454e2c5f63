"""The benchmark must keep running: two batches each way, no figures asserted but the counts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).with_name("bench_distributor.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_distributor", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("sequential", [False, True])
def test_benchmark_runs_and_counts_requests(bench, sequential):
    result = bench.run(2, latency=False, sequential=sequential)
    assert result["failures"] == 0
    assert result["forwarded"] == 20
    assert result["dynamodb_writes_per_message"] == 1.0
    assert result["per_1000"]["sqs.send_message_batch"] <= 300.0
