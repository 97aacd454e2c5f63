"""A moto server on 127.0.0.1 (in a thread of this process) and sessions bound to it.

`LocalServer` starts moto's `ThreadedMotoServer` on a free port. Every stack started in the
same process shares moto's in-memory backends, so two stacks in one process need different
resource names (see `resources.create_stack(name_suffix=...)`).

`LocalSession` is what the local processes use instead of a default boto3 session: fake
credentials and the local endpoint, without touching `os.environ`, so that nothing here can
reach a real AWS account.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# The local tools run many threads on one client per region (pollers, workers, sampler).
CLIENT_CONFIG = Config(
    max_pool_connections=64,
    connect_timeout=2,
    read_timeout=30,
    retries={"mode": "standard", "max_attempts": 3},
)


class LocalServer:
    """moto's server in a daemon thread; `with LocalServer() as server: server.endpoint_url`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: Any = None
        self.endpoint_url = ""

    def start(self) -> LocalServer:
        from moto.server import ThreadedMotoServer  # moto is heavy: import it when needed

        # werkzeug logs every request at INFO on stderr; a local stack makes thousands.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalSession:
    """A boto3 session whose clients talk to `endpoint_url` with fake credentials.

    Offers the one method the distributor's `build_distributor(session=...)` and the local
    tools use, `client(service, region_name=..., config=...)`; safe to call from several
    threads (boto3 sessions are not).
    """

    def __init__(self, endpoint_url: str, region_name: str = "us-east-1") -> None:
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self._session: Any = boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=region_name,
        )
        self._lock = threading.Lock()

    def client(
        self,
        service_name: str,
        region_name: str | None = None,
        config: Config | None = None,
        **kwargs: Any,
    ) -> Any:
        kwargs.setdefault("endpoint_url", self.endpoint_url)
        with self._lock:
            return self._session.client(
                service_name,
                region_name=region_name or self.region_name,
                config=config or CLIENT_CONFIG,
                **kwargs,
            )

    def sqs_clients(self, regions: list[str]) -> dict[str, Any]:
        """One SQS client per region: moto keeps each region's queues apart, keyed by the
        region a request is signed for, while its queue URLs are the same in every region."""
        return {region: self.client("sqs", region_name=region) for region in regions}


def endpoint_is_up(endpoint_url: str, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at the endpoint's host and port."""
    parts = urlsplit(endpoint_url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
