"""A moto server (``ThreadedMotoServer``) whose DynamoDB requests run one at a time.

moto checks a condition expression and applies the write without a lock, so two requests
racing on one item can both pass the same condition — which DynamoDB never allows. Worker
processes racing for the same request (the drills, the duplicate-copies runs) would then
show double executions that real DynamoDB cannot produce. This server serializes DynamoDB
requests only; SQS long polls still run concurrently.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


class AtomicDynamoDB:
    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with self._lock:
                return list(self._app(environ, start_response))
        return self._app(environ, start_response)


class AtomicMotoServer(ThreadedMotoServer):
    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)

    def _server_entry(self) -> None:
        app = AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def endpoint_url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


class MotoServerProcess:
    """`AtomicMotoServer` in a process of its own, so the client's threads (a benchmark's
    feeder, its log parsing) never compete with moto for one interpreter lock."""

    def __init__(self) -> None:
        import subprocess
        import sys
        from pathlib import Path

        tests = str(Path(__file__).resolve().parents[1])
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVE],
            env={**__import__("os").environ, "PYTHONPATH": tests},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.endpoint_url = self.process.stdout.readline().strip()

    def start(self) -> None:
        return None

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


_SERVE = """
import logging, sys, time
logging.getLogger("werkzeug").setLevel(logging.WARNING)
from worker.moto_server import AtomicMotoServer
server = AtomicMotoServer()
server.start()
print(server.endpoint_url, flush=True)
while True:
    time.sleep(3600)
"""
