"""The worker's settings: each from a flag or, when the flag is absent, an environment variable.

The names are a contract with the Kubernetes Deployment and the IAM policy (docs/worker.md):
change one here and there in the same commit. `OPTIONS` drives argparse, ``--help``'s table
and the validation messages, so a bad value is reported with the flag *and* the variable.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from orchestrator.worker.exceptions import WorkerConfigError

KIB = 1024
DEFAULT_INLINE_RESULT_MAX_BYTES = 32 * KIB
# DynamoDB's item limit is 400 KB; the rest of the record needs a few KB.
MAX_INLINE_RESULT_BYTES = 350_000
MAX_VISIBILITY_TIMEOUT = 43_200  # SQS: 12 hours
MAX_POLL_SECONDS = 20  # SQS's longest long poll
MAX_PREFETCH_BATCHES = 8


@dataclass(frozen=True, slots=True)
class Option:
    flag: str
    env: str
    help: str
    default: str | None = None
    required: bool = False
    fallback_env: tuple[str, ...] = ()
    """Variables read, in order, when neither the flag nor `env` is set."""
    is_flag: bool = False
    """A switch: present on the command line, or a true-ish value in the variable."""

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def names(self) -> str:
        return f"{self.flag} / {self.env}"


OPTIONS: tuple[Option, ...] = (
    Option("--queue-url", "WORKER_QUEUE_URL", "the region queue to consume", required=True),
    Option(
        "--high-priority-queue-url",
        "WORKER_HIGH_PRIORITY_QUEUE_URL",
        "the region's high-priority queue, drained before --queue-url without starving it "
        "(default: none, one lane)",
    ),
    Option(
        "--region",
        "WORKER_REGION",
        "the queue's region (its SQS, S3 and presence key)",
        fallback_env=("AWS_REGION", "AWS_DEFAULT_REGION"),
    ),
    Option(
        "--handler",
        "WORKER_HANDLER",
        "MODULE:ATTR, a function fn(requests) -> results or a class with load() and predict()",
        required=True,
    ),
    Option("--batch-size", "WORKER_BATCH_SIZE", "most requests per predict call", "1"),
    Option(
        "--max-wait",
        "WORKER_MAX_WAIT",
        "seconds to fill a batch after its first message",
        "0.1",
    ),
    Option(
        "--prefetch-batches",
        "WORKER_PREFETCH_BATCHES",
        "batches received and claimed ahead of the running one, so the model waits for "
        "neither SQS nor the table; each holds up to --batch-size messages",
        "2",
    ),
    Option(
        "--poll-seconds",
        "WORKER_POLL_SECONDS",
        "long-poll wait of an idle worker's receive, 1-20 s; also bounds how long a SIGTERM "
        "waits for an open poll",
        "20",
    ),
    Option(
        "--visibility-timeout",
        "WORKER_VISIBILITY_TIMEOUT",
        "seconds a received message stays hidden; heartbeats extend it before a third passes",
        "30",
    ),
    Option(
        "--invocation-timeout",
        "WORKER_INVOCATION_TIMEOUT",
        "seconds a predict call may take; then its requests fail as INVOCATION_TIMEOUT",
        "120",
    ),
    Option(
        "--drain-seconds",
        "WORKER_DRAIN_SECONDS",
        "on SIGTERM, how long the running batch may still take before it is handed back",
        "90",
    ),
    Option(
        "--max-attempts",
        "WORKER_MAX_ATTEMPTS",
        "attempts (claims) per request before a retryable failure becomes FAILED",
        "3",
    ),
    Option(
        "--dead-letter-queue-url",
        "WORKER_DEAD_LETTER_QUEUE_URL",
        "where failed requests go (default: the queue's redrive target, if it has one)",
    ),
    Option(
        "--http-port",
        "WORKER_HTTP_PORT",
        "port of /healthz, /readyz and /metrics (0: any free port)",
        "8080",
    ),
    Option(
        "--allow-https-input",
        "WORKER_ALLOW_HTTPS_INPUT",
        "let read_input() fetch https:// input URLs (s3:// always works)",
        is_flag=True,
    ),
)

# Environment only: deployment wiring rather than tuning.
ENVIRONMENT: tuple[tuple[str, str, str], ...] = (
    ("IDEMPOTENCY_TABLE_NAME", "the request records (the distributor's ledger)", "required"),
    ("IDEMPOTENCY_TABLE_REGION", "the table's region (the primary region)", "AWS_REGION"),
    ("IDEMPOTENCY_TTL_DAYS", "TTL of a record the worker has to create", "7"),
    ("RESULTS_BUCKET", "bucket for results larger than INLINE_RESULT_MAX_BYTES", "none"),
    ("RESULTS_PREFIX", "key prefix of those results: PREFIX<request_id>.json", "results/"),
    ("INLINE_RESULT_MAX_BYTES", "largest result kept inline in the record", "32768"),
    ("WORKERS_TABLE_NAME", "presence table (liveness and capacity for routing)", "none: off"),
    ("WORKER_ID", "this worker's id in records and presence", "POD_NAME, else host-pid"),
    ("REQUEST_TTL_SECONDS", "default deadline after the request was queued", "21600"),
    ("LOG_LEVEL", "logging level of the JSON logs", "INFO"),
)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    queue_url: str
    region: str
    handler: str
    table_name: str
    table_region: str
    worker_id: str
    high_priority_queue_url: str | None = None
    batch_size: int = 1
    max_wait: float = 0.1
    prefetch_batches: int = 2
    poll_seconds: int = MAX_POLL_SECONDS
    visibility_timeout: int = 30
    invocation_timeout: float = 120.0
    drain_seconds: float = 90.0
    max_attempts: int = 3
    dead_letter_queue_url: str | None = None
    http_port: int | None = 8080
    """None: no HTTP server (library use and tests)."""
    allow_https_input: bool = False
    results_bucket: str | None = None
    results_prefix: str = "results/"
    inline_result_max_bytes: int = DEFAULT_INLINE_RESULT_MAX_BYTES
    workers_table: str | None = None
    request_ttl_seconds: float | None = 21_600.0
    record_ttl_days: int = 7
    log_level: str = "INFO"

    @property
    def heartbeat_interval(self) -> float:
        """How often the heartbeat looks at held messages (a sixth of the visibility
        timeout: each is extended before a third of it has passed)."""
        return self.visibility_timeout / 6


def default_worker_id(environ: Mapping[str, str]) -> str:
    return environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def region_of_queue(queue_url: str) -> str | None:
    """``us-west-2`` from ``https://sqs.us-west-2.amazonaws.com/...``; None for other hosts."""
    host = urlsplit(queue_url).hostname or ""
    parts = host.split(".")
    if len(parts) >= 4 and parts[0] == "sqs":
        return parts[1]
    return None


def _raw(option: Option, given: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    value = given.get(option.dest)
    if value not in (None, False):
        return "true" if value is True else str(value)
    for name in (option.env, *option.fallback_env):
        if environ.get(name):
            return environ[name]
    return option.default


def _convert(option: Option, raw: str, kind: Callable[[str], Any], low: float | None) -> Any:
    try:
        value = kind(raw)
    except ValueError:
        raise WorkerConfigError(
            f"{option.names}: expected {'a whole number' if kind is int else 'a number'}, "
            f"got {raw!r}"
        ) from None
    if low is not None and value < low:
        raise WorkerConfigError(f"{option.names}: must be at least {low:g}, got {raw}")
    return value


def _truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "yes", "on")


def _env_number(environ: Mapping[str, str], name: str, default: str, low: float) -> float:
    raw = environ.get(name) or default
    try:
        value = float(raw)
    except ValueError:
        raise WorkerConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value < low:
        raise WorkerConfigError(f"{name}: must be at least {low:g}, got {raw}")
    return value


def settings_from(given: Mapping[str, Any], environ: Mapping[str, str]) -> WorkerSettings:
    """Settings from parsed flags (`given`, keyed by `Option.dest`) over `environ`.

    Raises `WorkerConfigError` naming the flag and the variable of the first bad value.
    """
    options = {option.dest: option for option in OPTIONS}
    raw = {dest: _raw(option, given, environ) for dest, option in options.items()}
    for dest, option in options.items():
        if option.required and not raw[dest]:
            raise WorkerConfigError(f"{option.names}: required")
    queue_url = str(raw["queue_url"])
    region = raw["region"] or region_of_queue(queue_url)
    if not region:
        raise WorkerConfigError(f"{options['region'].names}: required (or set AWS_REGION)")
    handler = str(raw["handler"])
    if ":" not in handler:
        raise WorkerConfigError(
            f"{options['handler'].names}: expected MODULE:ATTR, got {handler!r}"
        )

    def number(dest: str, kind: Callable[[str], Any], low: float | None) -> Any:
        return _convert(options[dest], str(raw[dest]), kind, low)

    visibility = number("visibility_timeout", int, 2)
    if visibility > MAX_VISIBILITY_TIMEOUT:
        raise WorkerConfigError(
            f"{options['visibility_timeout'].names}: at most {MAX_VISIBILITY_TIMEOUT} (SQS)"
        )
    poll_seconds = number("poll_seconds", int, 1)
    if poll_seconds > MAX_POLL_SECONDS:
        raise WorkerConfigError(
            f"{options['poll_seconds'].names}: at most {MAX_POLL_SECONDS} (SQS's longest long poll)"
        )
    prefetch = number("prefetch_batches", int, 1)
    if prefetch > MAX_PREFETCH_BATCHES:
        raise WorkerConfigError(
            f"{options['prefetch_batches'].names}: at most {MAX_PREFETCH_BATCHES} (each batch "
            "ahead is work no other worker can take)"
        )
    table_name = environ.get("IDEMPOTENCY_TABLE_NAME")
    if not table_name:
        raise WorkerConfigError("IDEMPOTENCY_TABLE_NAME: required (the request records)")
    table_region = (
        environ.get("IDEMPOTENCY_TABLE_REGION")
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or region
    )
    inline_max = int(_env_number(environ, "INLINE_RESULT_MAX_BYTES", "32768", 0))
    if inline_max > MAX_INLINE_RESULT_BYTES:
        raise WorkerConfigError(
            f"INLINE_RESULT_MAX_BYTES: at most {MAX_INLINE_RESULT_BYTES} "
            "(a DynamoDB item holds 400 KB)"
        )
    ttl = _env_number(environ, "REQUEST_TTL_SECONDS", "21600", 0)
    http_port = number("http_port", int, 0)
    if http_port > 65_535:
        raise WorkerConfigError(f"{options['http_port'].names}: not a port: {http_port}")
    return WorkerSettings(
        queue_url=queue_url,
        high_priority_queue_url=raw["high_priority_queue_url"] or None,
        region=region,
        handler=handler,
        table_name=table_name,
        table_region=table_region,
        worker_id=environ.get("WORKER_ID") or default_worker_id(environ),
        batch_size=number("batch_size", int, 1),
        max_wait=number("max_wait", float, 0),
        prefetch_batches=prefetch,
        poll_seconds=poll_seconds,
        visibility_timeout=visibility,
        invocation_timeout=number("invocation_timeout", float, 0.001),
        drain_seconds=number("drain_seconds", float, 0),
        max_attempts=number("max_attempts", int, 1),
        dead_letter_queue_url=raw["dead_letter_queue_url"] or None,
        http_port=http_port,
        allow_https_input=_truthy(raw["allow_https_input"]),
        results_bucket=environ.get("RESULTS_BUCKET") or None,
        results_prefix=environ.get("RESULTS_PREFIX", "results/"),
        inline_result_max_bytes=inline_max,
        workers_table=environ.get("WORKERS_TABLE_NAME") or None,
        request_ttl_seconds=ttl or None,
        record_ttl_days=int(_env_number(environ, "IDEMPOTENCY_TTL_DAYS", "7", 1)),
        log_level=(environ.get("LOG_LEVEL") or "INFO").upper(),
    )


def help_table() -> str:
    """The flags and variables as a plain-text table (``--help``'s epilog)."""
    rows = [(o.flag, o.env, _default_text(o)) for o in OPTIONS]
    rows += [("", name, default) for name, _meaning, default in ENVIRONMENT]
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"  {'flag':<{width[0]}}  {'environment':<{width[1]}}  default"]
    lines += [f"  {a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def _default_text(option: Option) -> str:
    if option.default:
        return option.default
    if option.required:
        return "required"
    if option.fallback_env:
        return ", else ".join(option.fallback_env)
    return "off" if option.is_flag else "-"


def argument_names(options: Sequence[Option] = OPTIONS) -> list[str]:
    return [option.flag for option in options]
