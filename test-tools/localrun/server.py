"""A moto server on 127.0.0.1 (a process of its own) and sessions bound to it.

`LocalServer` starts `localrun.moto_process` on a free port and reads back where it listens;
each server has its own state, so stacks on different servers never see each other's
resources (two stacks on one server need different names:
`resources.create_stack(name_suffix=...)`). Its DynamoDB requests run one at a time, as
DynamoDB's conditional writes are atomic and moto's are not (`localrun.moto_process`).

`LocalSession` is what the local processes use instead of a default boto3 session: fake
credentials and the local endpoint, without touching `os.environ`, so that nothing here can
reach a real AWS account.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from localrun.child import child_environ

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# The local tools run many threads on one client per region (pollers, workers, sampler).
CLIENT_CONFIG = Config(
    max_pool_connections=64,
    connect_timeout=2,
    read_timeout=30,
    retries={"mode": "standard", "max_attempts": 3},
)
START_TIMEOUT_SECONDS = 60.0


class LocalServer:
    """The moto server process; `with LocalServer() as server: server.endpoint_url`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._process: subprocess.Popen[str] | None = None
        self.endpoint_url = ""

    def start(self) -> LocalServer:
        command = [sys.executable, "-m", "localrun.moto_process"]
        self._process = subprocess.Popen(
            [*command, "--host", self._host, "--port", str(self._port)],
            env=child_environ(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl-C reaches the stack, which stops it last
        )
        assert self._process.stdout is not None
        line = _read_line(self._process.stdout, START_TIMEOUT_SECONDS)
        try:
            self.endpoint_url = str(json.loads(line)["endpoint_url"])
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise RuntimeError(f"the moto server did not start: {line!r}") from None
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_line(stream: Any, timeout: float) -> str:
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0].strip() if found else ""


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
