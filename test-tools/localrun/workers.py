"""The real GPU worker (`orchestrator worker`) in each region, as one process per GPU.

Each worker is its own process, as each is its own pod in a cluster: the worker's command
line, environment contract and boto3 clients (through ``AWS_ENDPOINT_URL``), its signal
handling (SIGTERM drains: unstarted work handed back, the running batch finished), its
presence item and its exit status are the real ones. Processes also let the workers use the
second core while this process runs the moto server and the distributor.

`WorkerFleet` starts ``capacities[region]`` processes per region running
``localrun.models:SimulatedModel``; each writes its JSON log to ``FOLDER/<worker id>.log``
and its executions to ``FOLDER/<worker id>.executions.jsonl`` (`localrun.models`). The
processes are in their own session (a Ctrl-C in the terminal reaches the stack, which then
drains them in order) and get SIGTERM if this process dies (`localrun.child`).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from localrun.child import child_environ
from localrun.models import (
    CALL_MS_ENV,
    EXECUTION_LOG_ENV,
    ITEM_MS_ENV,
    OK,
    PERMANENT_CODE,
    Execution,
    ExecutionReader,
    PredictCall,
    executions,
    predict_calls,
)
from localrun.resources import StackResources

HANDLER = "localrun.models:SimulatedModel"
STARTED = "worker started"
KILL_MARGIN_SECONDS = 10.0
"""After a SIGTERM, how much longer than the drain a worker may take before SIGKILL."""


@dataclass(frozen=True)
class WorkerOptions:
    """The worker's flags (docs/deployment.md) and the simulated model's cost."""

    batch_size: int = 8
    max_wait: float = 0.05
    poll_seconds: int = 1
    """The idle long poll (deployed: 20 s): a SIGTERM waits at most this for an open poll,
    so stops are quick."""
    visibility_timeout: int = 30
    """Seconds (the worker's default). The heartbeat extends a message held longer than a
    third of it."""
    invocation_timeout: float = 10.0
    """A claim's lease is this + 15 s: how long a killed worker's claims block a retry."""
    drain_seconds: float = 90.0
    """How long a running batch may still take after SIGTERM (the worker's default); the
    simulated model's batches take well under a second."""
    call_ms: float = 200.0
    item_ms: float = 40.0
    log_level: str = "INFO"

    def environ(self) -> dict[str, str]:
        return {
            "WORKER_HANDLER": HANDLER,
            "WORKER_BATCH_SIZE": str(self.batch_size),
            "WORKER_MAX_WAIT": f"{self.max_wait:g}",
            "WORKER_POLL_SECONDS": str(self.poll_seconds),
            "WORKER_VISIBILITY_TIMEOUT": str(self.visibility_timeout),
            "WORKER_INVOCATION_TIMEOUT": f"{self.invocation_timeout:g}",
            "WORKER_DRAIN_SECONDS": f"{self.drain_seconds:g}",
            "WORKER_HTTP_PORT": "0",
            "LOG_LEVEL": self.log_level,
            CALL_MS_ENV: f"{self.call_ms:g}",
            ITEM_MS_ENV: f"{self.item_ms:g}",
        }


@dataclass
class WorkerProcess:
    worker_id: str
    region: str
    process: subprocess.Popen[bytes]
    log: Path
    executions: Path
    stop_requested: bool = False
    killed: bool = False
    started: dict[str, Any] | None = None
    """The worker's ``worker started`` log entry, once it is ready."""

    @property
    def http_port(self) -> int | None:
        port = (self.started or {}).get("http_port")
        return int(port) if port is not None else None

    @property
    def exit_code(self) -> int | None:
        return self.process.poll()

    def read_started(self) -> dict[str, Any] | None:
        if self.started is None:
            self.started = _find_entry(self.log, STARTED)
        return self.started

    def last_lines(self, count: int = 3) -> str:
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return " | ".join(line[:300] for line in lines[-count:])


def _find_entry(path: Path, message: str) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if message in line:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("message") == message:
                return entry
    return None


@dataclass
class WorkerFleet:
    """`capacities[region]` worker processes per region (module docstring)."""

    stack: StackResources
    capacities: Mapping[str, int]
    folder: Path
    options: WorkerOptions = field(default_factory=WorkerOptions)
    workers: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reader = ExecutionReader([])
        self._files: list[IO[bytes]] = []

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> WorkerFleet:
        """Start every process (they load and connect in parallel); see `wait_ready`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for region, count in self.capacities.items():
            for index in range(1, count + 1):
                self.workers.append(self._spawn(region, f"{region}-w{index}"))
        return self

    def _spawn(self, region: str, worker_id: str) -> WorkerProcess:
        log = self.folder / f"{worker_id}.log"
        executions_path = self.folder / f"{worker_id}.executions.jsonl"
        for old in (log, executions_path):
            old.unlink(missing_ok=True)  # a previous run's
        environ = {
            **child_environ(),
            **self.stack.worker_environ(region),
            **self.options.environ(),
            "WORKER_ID": worker_id,
            EXECUTION_LOG_ENV: str(executions_path),
        }
        output = log.open("ab")
        self._files.append(output)
        process = subprocess.Popen(
            [sys.executable, "-m", "localrun.worker_main"],
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader.add(executions_path)
        return WorkerProcess(worker_id, region, process, log, executions_path)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every worker has logged ``worker started``; `WorkerFailure` when one exits
        first or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            waiting = [w for w in self.workers if w.read_started() is None]
            if not waiting:
                return
            for worker in waiting:
                if worker.exit_code is not None:
                    raise WorkerFailure(
                        f"worker {worker.worker_id} exited with status {worker.exit_code} "
                        f"before it started: {worker.last_lines()}"
                    )
            if time.monotonic() > deadline:
                raise WorkerFailure(
                    f"{len(waiting)} workers not started after {timeout:g} s "
                    f"({', '.join(w.worker_id for w in waiting)})"
                )
            time.sleep(0.1)

    def signal_stop(self, regions: Iterable[str] | None = None) -> list[WorkerProcess]:
        """SIGTERM the workers (of `regions`, or all), as Kubernetes does before a Spot node
        goes: each stops receiving, hands back what it has not started, finishes its batch
        within ``--drain-seconds`` and exits 0. Returns the workers signalled."""
        chosen = set(regions) if regions is not None else None
        targets = [w for w in self.workers if chosen is None or w.region in chosen]
        for worker in targets:
            if worker.exit_code is None and not worker.stop_requested:
                # Once: a second SIGTERM would make it hand everything back at once (exit 3).
                worker.process.send_signal(signal.SIGTERM)
            worker.stop_requested = True
        return targets

    def stop(self, regions: Iterable[str] | None = None, timeout: float | None = None) -> None:
        """`signal_stop`, then wait for them; one still running after `timeout` (default: the
        drain and a margin) is killed."""
        targets = self.signal_stop(regions)
        limit = timeout if timeout is not None else self.options.drain_seconds + KILL_MARGIN_SECONDS
        deadline = time.monotonic() + limit
        for worker in targets:
            try:
                worker.process.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                worker.killed = True
                worker.process.kill()
                worker.process.wait()
        if regions is None:
            for file in self._files:
                file.close()

    def __enter__(self) -> WorkerFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what they did ---------------------------------------------------------------------------
    @property
    def failure(self) -> str | None:
        """A worker that exited without being asked to, or did not drain cleanly."""
        for worker in self.workers:
            code = worker.exit_code
            if code is None:
                continue
            if not worker.stop_requested:
                return (
                    f"worker {worker.worker_id} exited on its own with status {code}: "
                    f"{worker.last_lines(1)}"
                )
            if worker.killed or code != 0:
                how = "was killed after its drain" if worker.killed else f"exited {code}"
                return f"worker {worker.worker_id} {how} (see {worker.log})"
        return None

    def exit_codes(self) -> dict[str, int | None]:
        return {w.worker_id: w.exit_code for w in self.workers}

    def alive(self, region: str | None = None) -> list[WorkerProcess]:
        return [
            w
            for w in self.workers
            if w.exit_code is None and (region is None or w.region == region)
        ]

    def executions(self) -> list[Execution]:
        return executions(self._reader.entries())

    def predict_calls(self) -> list[PredictCall]:
        return predict_calls(self._reader.entries())

    def done_per_region(self) -> Counter[str]:
        """Requests run to their end (a result, or the injected permanent failure), by the
        region of the worker that ran them."""
        return Counter(e.region for e in self.executions() if e.outcome in (OK, PERMANENT_CODE))


class WorkerFailure(RuntimeError):
    """A worker process could not start."""
