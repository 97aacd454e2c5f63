"""The simulated model the local workers serve, and its execution log (no AWS)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from localrun.models import (
    CALL_MS_ENV,
    EXECUTION_LOG_ENV,
    IMAGE_BYTES,
    ITEM_MS_ENV,
    OK,
    PERMANENT_CODE,
    RETRYABLE_CODE,
    ExecutionReader,
    SimulatedModel,
    executions,
    parse_entries,
    predict_calls,
)
from orchestrator.worker import PermanentError, Request, RetryableError
from orchestrator.worker.config import DEFAULT_INLINE_RESULT_MAX_BYTES
from orchestrator.worker.handler import load_handler
from orchestrator.worker.results import encode


def request(
    rid: str, *, simulate: str | None = None, attempt: int = 1, model: str = "m"
) -> Request:
    metadata: dict[str, Any] = {"simulate": simulate} if simulate else {}
    return Request(rid, model, "normal", metadata, f"s3://inputs/{rid}.json", attempt=attempt)


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimulatedModel:
    monkeypatch.setenv(CALL_MS_ENV, "20")
    monkeypatch.setenv(ITEM_MS_ENV, "5")
    monkeypatch.setenv(EXECUTION_LOG_ENV, str(tmp_path / "w1.executions.jsonl"))
    monkeypatch.setenv("WORKER_ID", "us-west-2-w1")
    monkeypatch.setenv("WORKER_REGION", "us-west-2")
    loaded = load_handler("localrun.models:SimulatedModel")  # as --handler names it
    loaded.load()
    assert isinstance(loaded._target, SimulatedModel)  # type: ignore[attr-defined]
    return loaded._target  # type: ignore[attr-defined,no-any-return]


def test_a_call_costs_a_fixed_time_plus_a_time_per_request(model: SimulatedModel) -> None:
    began = time.monotonic()
    model.predict([request(f"r{i}") for i in range(4)])
    assert time.monotonic() - began >= 0.020 + 4 * 0.005


def test_injected_failures_and_results(model: SimulatedModel) -> None:
    results = model.predict(
        [
            request("ok"),
            request("again", simulate="retryable"),
            request("again-2", simulate="retryable", attempt=2),
            request("bad", simulate="permanent", attempt=3),
            request("img", model="sdxl-turbo"),
        ]
    )
    ok, again, recovered, bad, image = results
    assert isinstance(ok, dict) and ok["request_id"] == "ok" and ok["worker"] == "us-west-2-w1"
    assert isinstance(again, RetryableError) and again.code == RETRYABLE_CODE
    assert isinstance(recovered, dict) and recovered["attempt"] == 2
    assert isinstance(bad, PermanentError) and bad.code == PERMANENT_CODE and bad.message
    # An image is larger than the worker's inline limit: it goes to the results bucket.
    assert len(encode(image).encode()) > DEFAULT_INLINE_RESULT_MAX_BYTES
    assert len(encode(ok).encode()) < 1_000
    assert isinstance(image, dict) and len(image["image_png_base64"]) == IMAGE_BYTES


def test_every_call_is_logged_and_read_back(model: SimulatedModel, tmp_path: Path) -> None:
    model.predict([request("a"), request("b", simulate="retryable")])
    model.predict([request("b", simulate="retryable", attempt=2)])
    reader = ExecutionReader([tmp_path / "w1.executions.jsonl"])
    runs = executions(reader.entries())
    assert [(e.request_id, e.attempt, e.outcome, e.batch_size) for e in runs] == [
        ("a", 1, OK, 2),
        ("b", 1, RETRYABLE_CODE, 2),
        ("b", 2, OK, 1),
    ]
    assert all(e.region == "us-west-2" and e.worker == "us-west-2-w1" for e in runs)
    assert [c.size for c in predict_calls(reader.entries())] == [2, 1]
    model.predict([request("c")])
    assert [e.request_id for e in executions(reader.entries())][-1] == "c"  # read on


def test_a_run_that_never_ended_is_an_interrupted_execution(tmp_path: Path) -> None:
    path = tmp_path / "w.executions.jsonl"
    start = {"event": "start", "worker": "w", "region": "r", "at": 1.0, "requests": [["x", 1]]}
    path.write_text(json.dumps(start) + "\n" + '{"event": "end", "wor')  # killed mid-write
    reader = ExecutionReader([path])
    (run,) = executions(reader.entries())
    assert (run.request_id, run.ended, run.outcome, run.succeeded) == ("x", None, None, False)
    assert parse_entries(["not json", "[1]", json.dumps(start)]) == [start]
    with path.open("a") as file:  # the torn line is completed later: read once, whole
        file.write(
            'ker": "w", "region": "r", "at": 2.0, "started": 1.0, "requests": [["x", 1, "ok"]]}\n'
        )
    (run,) = executions(reader.entries())
    assert (run.ended, run.outcome) == (2.0, OK)
