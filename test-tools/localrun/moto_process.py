"""``python -m localrun.moto_process [--host H] [--port P]``: the local stack's moto server in a
process of its own (`localrun.server.LocalServer` starts it).

Its own process because moto is the busiest thing in a local stack: every call of the
distributor, the rescue, the workers and the tools is a request it parses and answers in
Python. In the stack's process it would share one interpreter lock with the distributor and
the pollers; here it has a core to itself. It prints ``{"endpoint_url": ...}`` on one line
once it listens, then serves until SIGTERM (or until its parent dies: `localrun.child`).

Two of moto's operations are made atomic, as AWS's are:

- **DynamoDB requests run one at a time.** moto checks a condition expression and applies
  the write without a lock, so two requests racing on one item can both pass the same
  condition, which DynamoDB never allows; workers racing to claim the same request (a
  duplicate copy, a rescued message whose original came back) would then both run it.
- **SQS receives pick their messages one at a time.** moto's ReceiveMessage scans the queue
  and marks a message received without a lock, so two receivers polling at once can both
  get the same message (SQS never hands a message to two receivers within its visibility
  timeout); the distributor would see one message twice and a malformed one would be
  dead-lettered twice. The scan holds a lock; the long poll's wait does not.

Everything else stays concurrent (long polls must not wait for each other).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import Any

from localrun.child import die_with_parent


class AtomicDynamoDB:
    """WSGI middleware: one DynamoDB request at a time (module docstring)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            with self._lock:
                return list(self._app(environ, start_response))
        return self._app(environ, start_response)


_RECEIVING = threading.Lock()


def make_receives_atomic() -> None:
    """Patch moto's SQS backend (module docstring): `receive_message` holds `_RECEIVING` while
    it scans and marks messages, and lets go of it while it waits for new ones."""
    from moto.sqs import models

    scan = models.SQSBackend.receive_message
    wait = models.Queue.wait_for_messages

    def receive_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _RECEIVING:
            return scan(self, *args, **kwargs)

    def wait_for_messages(self: Any, timeout: int) -> None:
        _RECEIVING.release()
        try:
            wait(self, timeout)
        finally:
            _RECEIVING.acquire()

    models.SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    models.Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


def serve(host: str, port: int) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class KeepAliveHandler(MotoRequestHandler):
        # HTTP/1.1 keeps a client's connection open between requests (werkzeug's default,
        # 1.0, closes it after each): no new connection and thread per AWS call.
        protocol_version = "HTTP/1.1"

    # werkzeug logs every request at INFO; a local stack makes thousands.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    make_receives_atomic()
    app = AtomicDynamoDB(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True, request_handler=KeepAliveHandler)
    server.daemon_threads = True  # type: ignore[attr-defined]
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    print(json.dumps({"endpoint_url": f"http://{bound_host}:{bound_port}"}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    parser = argparse.ArgumentParser(prog="python -m localrun.moto_process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
