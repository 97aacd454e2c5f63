"""Model handlers for worker processes started by tests and benchmarks (``--handler
worker.models:SimulatedModel`` with ``PYTHONPATH=tests``).

`SimulatedModel` costs ``SIM_CALL_SECONDS`` per predict plus ``SIM_ITEM_SECONDS`` per request
(the batching benchmark's 50 ms + 5 ms), and appends one JSON line per executed request to
``EXECUTION_LOG`` (pid, request id, start and end times) so a test can count executions
across processes. A request whose metadata says ``{"sleep": s}`` makes its batch take s
seconds more.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


class SimulatedModel:
    def __init__(self) -> None:
        self.call_seconds = float(os.environ.get("SIM_CALL_SECONDS", "0"))
        self.item_seconds = float(os.environ.get("SIM_ITEM_SECONDS", "0"))
        self.log_path = os.environ.get("EXECUTION_LOG")

    def load(self) -> None:
        return None

    def predict(self, requests: list[Any]) -> list[Any]:
        started = time.time()
        self._log("start", requests, started)
        extra = max((float(r.metadata.get("sleep", 0)) for r in requests), default=0.0)
        time.sleep(self.call_seconds + self.item_seconds * len(requests) + extra)
        finished = time.time()
        self._log("end", requests, finished)
        return [{"request_id": r.request_id, "batch": len(requests)} for r in requests]

    def _log(self, event: str, requests: list[Any], at: float) -> None:
        if not self.log_path:
            return
        lines = "".join(
            json.dumps({"event": event, "pid": os.getpid(), "request_id": r.request_id, "at": at})
            + "\n"
            for r in requests
        )
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(lines)
            log.flush()


def read_log(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log if line.strip()]
