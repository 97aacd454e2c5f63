"""The local stack's moto server (`localrun.moto_process`, patched by `localrun.moto_fixes`:
DynamoDB requests one at a time as DynamoDB's conditional writes are atomic, SQS scans
linear) for the worker tests and benchmarks: in this process (`AtomicMotoServer`) or in a
process of its own (`MotoServerProcess`, so a benchmark's own threads never compete with
moto for one interpreter lock)."""

from __future__ import annotations

from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import make_server

from localrun import moto_fixes
from localrun.server import LocalServer


class AtomicMotoServer(ThreadedMotoServer):
    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)

    def _server_entry(self) -> None:
        self._server = make_server(
            self._ip_address,
            self._port,
            moto_fixes.wsgi_app(),
            True,
            request_handler=MotoRequestHandler,
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def endpoint_url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


class MotoServerProcess(LocalServer):
    """`localrun.moto_process`, started at once: ``.endpoint_url``, ``.process``, ``.stop()``."""

    def __init__(self) -> None:
        super().__init__()
        self.start()

    @property
    def process(self) -> Any:
        return self._process
