"""Worker processes (``python -m orchestrator.worker``) against a moto server, for the signal
tests and the benchmarks: their JSON log lines are collected as they come."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from worker.conftest import PRIMARY, REGION, WorkerStack, wait_until
from worker.models import read_log

TESTS = Path(__file__).resolve().parents[1]


class WorkerProcess:
    def __init__(
        self, stack: WorkerStack, endpoint_url: str, log: Path, *args: str, **env: str
    ) -> None:
        environ = {
            **os.environ,
            "PYTHONPATH": str(TESTS),
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": PRIMARY,
            "IDEMPOTENCY_TABLE_NAME": stack.table_name,
            "WORKERS_TABLE_NAME": stack.workers_table,
            "RESULTS_BUCKET": stack.bucket,
            "EXECUTION_LOG": str(log),
            "WORKER_ID": f"proc-{time.monotonic_ns()}",
            **env,
        }
        argv = [
            sys.executable, "-m", "orchestrator.worker",
            "--queue-url", stack.queue_url, "--region", REGION,
            "--handler", "worker.models:SimulatedModel",
            "--dead-letter-queue-url", stack.dead_letter_queue_url,
            "--http-port", "0", *args,
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, env=environ, stderr=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"message": line.rstrip()})

    def logged(self, message: str) -> dict[str, Any] | None:
        return next((line for line in self.lines if line.get("message") == message), None)

    def logged_all(self, prefix: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if str(line.get("message", "")).startswith(prefix)]

    def wait_started(self, timeout: float = 30) -> WorkerProcess:
        wait_until(
            lambda: self.logged("worker started") or self.process.poll() is not None, timeout
        )
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited {self.process.returncode}: {self.lines[-5:]}")
        return self

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def started(log: Path) -> list[str]:
    return [e["request_id"] for e in read_log(str(log)) if e["event"] == "start"]
