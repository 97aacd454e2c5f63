"""The local stack's simulated model, run by the real worker (``--handler
localrun.models:SimulatedModel``), and the execution log the audit reads.

A predict call costs a fixed time plus a time per request (sleeps: a GPU's kernel launch and
per-item work), so batching pays off as on a GPU. Failures are injected by the request
itself, through ``metadata.simulate`` (the demo's traffic sets it on a few requests):

- ``"retryable"``: the first attempt returns a `RetryableError` (``SIMULATED_GPU_OOM``), a
  later attempt succeeds: the worker's retry path, through SQS visibility;
- ``"permanent"``: every attempt returns a `PermanentError` (``SIMULATED_BAD_INPUT``): the
  request ends FAILED, with its reason in its record and in the region's dead-letter queue.

Results are JSON; an image model's (``sdxl-turbo``) is about 40 KB, larger than the worker's
inline limit (32 KiB), so it goes to the region's results bucket.

Every predict call appends two JSON lines to the worker's execution log
(``LOCALRUN_EXECUTION_LOG``, one file per worker process, so lines never interleave): a
``start`` with the request ids and attempts, and an ``end`` with each request's outcome. A
request that was started and never ended was interrupted (its worker stopped mid-batch).
The audit counts executions from these files: the worker's own records cannot show a run
that should not have happened.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.worker import PermanentError, Request, RetryableError

EXECUTION_LOG_ENV = "LOCALRUN_EXECUTION_LOG"
CALL_MS_ENV = "LOCALRUN_MODEL_CALL_MS"
ITEM_MS_ENV = "LOCALRUN_MODEL_ITEM_MS"
DEFAULT_CALL_MS = 200.0
DEFAULT_ITEM_MS = 40.0

RETRYABLE = "retryable"
PERMANENT = "permanent"
RETRYABLE_CODE = "SIMULATED_GPU_OOM"
PERMANENT_CODE = "SIMULATED_BAD_INPUT"
IMAGE_MODEL = "sdxl-turbo"
IMAGE_BYTES = 40_000

OK = "ok"
"""The outcome of a request that returned a result."""


class SimulatedModel:
    """What `orchestrator worker --handler` loads: settings from the environment at load()."""

    def __init__(self) -> None:
        self.call_seconds = DEFAULT_CALL_MS / 1000
        self.item_seconds = DEFAULT_ITEM_MS / 1000
        self.worker_id = ""
        self.region = ""
        self._log: ExecutionLog | None = None

    def load(self) -> None:
        environ = os.environ
        self.call_seconds = float(environ.get(CALL_MS_ENV, DEFAULT_CALL_MS)) / 1000
        self.item_seconds = float(environ.get(ITEM_MS_ENV, DEFAULT_ITEM_MS)) / 1000
        self.worker_id = environ.get("WORKER_ID", f"pid-{os.getpid()}")
        self.region = environ.get("WORKER_REGION", "")
        path = environ.get(EXECUTION_LOG_ENV)
        self._log = ExecutionLog(Path(path)) if path else None

    def predict(self, requests: list[Request]) -> list[object]:
        started = time.time()
        if self._log is not None:
            self._log.write(
                {
                    "event": "start",
                    "worker": self.worker_id,
                    "region": self.region,
                    "at": started,
                    "requests": [[r.request_id, r.attempt] for r in requests],
                }
            )
        time.sleep(self.call_seconds + self.item_seconds * len(requests))
        results = [self._result(request) for request in requests]
        if self._log is not None:
            self._log.write(
                {
                    "event": "end",
                    "worker": self.worker_id,
                    "region": self.region,
                    "at": time.time(),
                    "started": started,
                    "requests": [
                        [r.request_id, r.attempt, outcome_of(result)]
                        for r, result in zip(requests, results, strict=True)
                    ],
                }
            )
        return results

    def _result(self, request: Request) -> object:
        simulate = request.metadata.get("simulate")
        if simulate == PERMANENT:
            return PermanentError(
                f"simulated bad input: {request.input_data_url} is not a valid input",
                PERMANENT_CODE,
            )
        if simulate == RETRYABLE and request.attempt <= 1:
            return RetryableError(
                "simulated: the GPU ran out of memory on this batch", RETRYABLE_CODE
            )
        result: dict[str, Any] = {
            "request_id": request.request_id,
            "model": request.model_name,
            "worker": self.worker_id,
            "attempt": request.attempt,
        }
        digest = hashlib.sha256(request.request_id.encode()).hexdigest()
        if request.model_name == IMAGE_MODEL:
            result["image_png_base64"] = (digest * (IMAGE_BYTES // len(digest) + 1))[:IMAGE_BYTES]
        else:
            result["label"] = f"class-{int(digest[:4], 16) % 10}"
            result["score"] = round(int(digest[4:8], 16) / 0xFFFF, 4)
        return result


def outcome_of(result: object) -> str:
    """``ok``, or the error code of a returned failure."""
    if isinstance(result, RetryableError | PermanentError):
        return result.code
    return OK


class ExecutionLog:
    """Append-only JSON lines, flushed per line (read while the worker runs)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, entry: Mapping[str, Any]) -> None:
        with self._lock:
            self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self._file.flush()


# -- the reader's side -------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    """One request in one predict call."""

    request_id: str
    attempt: int
    worker: str
    region: str
    started: float
    """Wall-clock seconds."""
    ended: float | None
    """None: started and never ended (its worker stopped mid-batch)."""
    outcome: str | None
    """``ok``, an error code, or None when it never ended."""
    batch_size: int

    @property
    def succeeded(self) -> bool:
        return self.outcome == OK


@dataclass(frozen=True)
class PredictCall:
    worker: str
    region: str
    started: float
    ended: float | None
    size: int


def parse_entries(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The log's entries; a torn last line (a worker killed mid-write) is skipped."""
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def executions(entries: Sequence[Mapping[str, Any]]) -> list[Execution]:
    """One `Execution` per request per predict call, from one or more logs' entries."""
    ends: dict[tuple[str, float], Mapping[str, Any]] = {
        (str(e["worker"]), float(e["started"])): e for e in entries if e.get("event") == "end"
    }
    found: list[Execution] = []
    for start in (e for e in entries if e.get("event") == "start"):
        key = (str(start["worker"]), float(start["at"]))
        end = ends.get(key)
        outcomes = {(rid, attempt): out for rid, attempt, out in (end or {}).get("requests", [])}
        size = len(start["requests"])
        for request_id, attempt in start["requests"]:
            found.append(
                Execution(
                    request_id=str(request_id),
                    attempt=int(attempt),
                    worker=key[0],
                    region=str(start.get("region", "")),
                    started=key[1],
                    ended=float(end["at"]) if end else None,
                    outcome=outcomes.get((request_id, attempt)) if end else None,
                    batch_size=size,
                )
            )
    return found


def predict_calls(entries: Sequence[Mapping[str, Any]]) -> list[PredictCall]:
    ends = {
        (str(e["worker"]), float(e["started"])): float(e["at"])
        for e in entries
        if e.get("event") == "end"
    }
    return [
        PredictCall(
            worker=str(e["worker"]),
            region=str(e.get("region", "")),
            started=float(e["at"]),
            ended=ends.get((str(e["worker"]), float(e["at"]))),
            size=len(e["requests"]),
        )
        for e in entries
        if e.get("event") == "start"
    ]


class ExecutionReader:
    """Reads every worker's execution log in a folder, each file from where it left off (a
    long-running `make local` reads them every second)."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._paths = list(paths)
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, str] = {}
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, path: Path) -> None:
        with self._lock:
            self._paths.append(path)

    def entries(self) -> list[dict[str, Any]]:
        """Every entry so far (new lines read now)."""
        with self._lock:
            for path in self._paths:
                self._entries.extend(parse_entries(self._new_lines(path)))
            return list(self._entries)

    def _new_lines(self, path: Path) -> list[str]:
        try:
            with path.open("r", encoding="utf-8") as file:
                file.seek(self._offsets.get(path, 0))
                text = file.read()
                self._offsets[path] = file.tell()
        except FileNotFoundError:
            return []
        text = self._partial.pop(path, "") + text
        lines = text.split("\n")
        if lines[-1]:  # not yet a whole line: keep it for the next read
            self._partial[path] = lines[-1]
        return lines[:-1]
