"""Prometheus metrics and the Kubernetes probes, on one small HTTP port.

- ``/healthz``: 200 while the process is alive and its model is not hung (a predict that has
  overrun ``--invocation-timeout`` twice over answers 503, so the liveness probe restarts the
  container);
- ``/readyz``: 200 when the model is loaded and the worker is not draining;
- ``/metrics``: the Prometheus text format.

Each worker has its own registry (several workers can live in one process: tests, benchmarks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
_BATCH_SIZES = (1, 2, 4, 8, 10, 16, 32, 64, 128, 256)


class WorkerMetrics:
    """The worker's metrics, all prefixed ``worker_``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.batches = Counter("worker_batches", "predict calls (batches run)", registry=r)
        self.batch_size = Histogram(
            "worker_batch_size", "requests per predict call", buckets=_BATCH_SIZES, registry=r
        )
        self.requests = Counter(
            "worker_requests",
            "requests settled, by outcome (succeeded, failed, expired, retried, duplicate, "
            "deferred, fenced, handed_back)",
            ["outcome"],
            registry=r,
        )
        self.failures = Counter(
            "worker_failures", "failed attempts, by error code", ["reason"], registry=r
        )
        self.items_per_second = Gauge(
            "worker_items_per_second",
            "requests finished per second, averaged over about a minute",
            registry=r,
        )
        self.received = Counter(
            "worker_received",
            "messages received, by lane (standard, high)",
            ["lane"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "worker_queue_wait_seconds",
            "from the request entering a region queue to its predict starting, by lane",
            ["lane"],
            buckets=_SECONDS,
            registry=r,
        )
        self.processing = Histogram(
            "worker_processing_seconds",
            "duration of one predict call",
            buckets=_SECONDS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "worker_request_seconds",
            "from the request entering a region queue to its final record, by lane",
            ["lane"],
            buckets=_SECONDS,
            registry=r,
        )
        self.in_flight = Gauge(
            "worker_in_flight", "messages this worker holds (received, not settled)", registry=r
        )
        self.running = Gauge("worker_running", "requests in the batch running now", registry=r)
        self.heartbeats = Counter(
            "worker_heartbeats", "heartbeats that extended visibility", registry=r
        )
        self.heartbeat_failures = Counter(
            "worker_heartbeat_failures", "messages a heartbeat could not extend", registry=r
        )
        self.lease_renewals = Counter(
            "worker_lease_renewals", "run leases renewed (a batch outlived its lease)", registry=r
        )
        self.notifications = Counter(
            "worker_notifications", "SNS notifications, by result", ["result"], registry=r
        )
        self.aws_errors = Counter(
            "worker_aws_errors", "AWS calls that failed, by operation", ["operation"], registry=r
        )
        self.ready = Gauge(
            "worker_ready", "1 when the model is loaded and not draining", registry=r
        )
        self._rate_lock = threading.Lock()
        self._rate = 0.0
        self._rate_at: float | None = None

    def finished(self, count: int, now: float) -> None:
        """Feed the items-per-second gauge (an exponentially weighted rate, ~60 s)."""
        with self._rate_lock:
            if self._rate_at is None:
                self._rate_at = now
                return
            elapsed = max(now - self._rate_at, 1e-3)
            instant = count / elapsed
            weight = min(1.0, elapsed / 60.0)
            self._rate += weight * (instant - self._rate)
            self._rate_at = now
            self.items_per_second.set(self._rate)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on a daemon thread (module docstring)."""

    def __init__(
        self,
        port: int,
        metrics: WorkerMetrics,
        alive: Callable[[], bool],
        ready: Callable[[], bool],
        host: str = "0.0.0.0",  # every interface: the kubelet probes from outside the pod
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, bytes, str]]] = {
            "/healthz": lambda: _probe(alive()),
            "/readyz": lambda: _probe(ready()),
            "/metrics": lambda: (200, metrics.exposition(), CONTENT_TYPE_LATEST),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                status, body, content_type = (
                    route() if route else (404, b"not found\n", "text/plain")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None  # probes every few seconds would drown the request logs

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="worker-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _probe(ok: bool) -> tuple[int, bytes, str]:
    return (200, b"ok\n", "text/plain") if ok else (503, b"unavailable\n", "text/plain")
