"""``python -m localrun.moto_process [--host H] [--port P]``: the local stack's moto server in a
process of its own (`localrun.server.LocalServer` starts it).

Its own process because moto is the busiest thing in a local stack: every call of the
distributor, the rescue, the workers and the tools is a request it parses and answers in
Python. In the stack's process it would share one interpreter lock with the distributor and
the pollers; here it has a core to itself. It prints ``{"endpoint_url": ...}`` on one line
once it listens, then serves until SIGTERM (or until its parent dies: `localrun.child`).

moto is patched (`localrun.moto_fixes`) to be atomic where AWS is — one DynamoDB request at
a time, one SQS receive scan at a time — and linear where it is quadratic (reading one
attribute of a queue scans every message in it). Long polls stay concurrent.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from localrun.child import die_with_parent
from localrun.moto_fixes import wsgi_app


def serve(host: str, port: int) -> None:
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    class KeepAliveHandler(MotoRequestHandler):
        # HTTP/1.1 keeps a client's connection open between requests (werkzeug's default,
        # 1.0, closes it after each): no new connection and thread per AWS call.
        protocol_version = "HTTP/1.1"

    # werkzeug logs every request at INFO; a local stack makes thousands.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = wsgi_app()
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
