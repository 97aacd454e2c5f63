"""The local stack file, read by the command-line tools, and their boto3 session plumbing.

`.local-stack.json` (written by `make local` / the demo at the repository root; path override
with the environment variable ``ORCHESTRATOR_STACK_FILE``; readers look for it in the current
directory and its parents) has the format fixed in docs/contracts.md::

    {"endpoint_url": "http://127.0.0.1:PORT", "primary_region": "us-east-1",
     "master_queue_url": "...", "dead_letter_queue_url": "...", "table_name": "...",
     "region_queues": {"us-east-1": "...", "us-west-2": "...", "us-west-1": "..."}}

A missing file means "no local stack": the tools then need their flags. A file that exists but
cannot be read is an error (`StackFileError`), never silently ignored.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK_FILE_ENV = "ORCHESTRATOR_STACK_FILE"
STACK_FILE_NAME = ".local-stack.json"
DEFAULT_REGION = "us-east-1"
# Credentials used against a local endpoint (moto / LocalStack) when none are configured.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_SQS_HOST_REGION = re.compile(r"^sqs[.-]([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com", re.IGNORECASE)


def stack_file_path(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """``$ORCHESTRATOR_STACK_FILE``, else the nearest `.local-stack.json` from `cwd` upwards,
    else `.local-stack.json` in `cwd` (which may not exist)."""
    override = (os.environ if environ is None else environ).get(STACK_FILE_ENV)
    if override:
        return Path(override).expanduser()
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        candidate = folder / STACK_FILE_NAME
        if candidate.is_file():
            return candidate
    return start / STACK_FILE_NAME


class StackFileError(Exception):
    """The stack file exists but is not usable."""


@dataclass(frozen=True)
class LocalStack:
    path: Path
    endpoint_url: str
    primary_region: str
    master_queue_url: str
    dead_letter_queue_url: str | None = None
    table_name: str | None = None
    region_queues: dict[str, str] = field(default_factory=dict)


def _require_str(doc: dict[str, Any], key: str, path: Path) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise StackFileError(f"{path}: {key!r} must be a non-empty string")
    return value


def load_stack(path: Path | None = None) -> LocalStack | None:
    """The local stack description, or None when there is no stack file."""
    path = path or stack_file_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StackFileError(f"{path}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StackFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(doc, dict):
        raise StackFileError(f"{path}: must hold a JSON object")
    queues = doc.get("region_queues") or {}
    if not isinstance(queues, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in queues.items()
    ):
        raise StackFileError(f"{path}: 'region_queues' must map region names to queue URLs")
    optional = {k: doc.get(k) for k in ("dead_letter_queue_url", "table_name")}
    return LocalStack(
        path=path,
        endpoint_url=_require_str(doc, "endpoint_url", path),
        primary_region=doc.get("primary_region") or DEFAULT_REGION,
        master_queue_url=_require_str(doc, "master_queue_url", path),
        dead_letter_queue_url=optional["dead_letter_queue_url"],
        table_name=optional["table_name"],
        region_queues=dict(queues),
    )


def is_region(name: str) -> bool:
    return bool(_REGION.match(name))


def region_from_queue_url(url: str) -> str | None:
    """`https://sqs.us-west-2.amazonaws.com/123/q` -> `us-west-2`; None for other hosts."""
    host = url.split("://", 1)[-1]
    match = _SQS_HOST_REGION.match(host)
    return match.group(1).lower() if match else None


def make_session(profile: str | None) -> Any:
    """A boto3 Session; `botocore.exceptions.ProfileNotFound` propagates to the caller."""
    import boto3

    return boto3.Session(profile_name=profile) if profile else boto3.Session()


def client_kwargs(session: Any, endpoint_url: str | None) -> dict[str, Any]:
    """Keyword arguments for `session.client("sqs", ...)` beyond the region.

    Against an explicit endpoint (moto, LocalStack) with no credentials configured, dummy
    credentials are used so that `make local` works on a machine without an AWS account.
    """
    from botocore.config import Config

    kwargs: dict[str, Any] = {
        "config": Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
    }
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
        if session.get_credentials() is None:
            kwargs.update(LOCAL_CREDENTIALS)
    return kwargs


def describe_endpoint(client: Any) -> str:
    """The endpoint a client talks to, for error messages."""
    try:
        return str(client.meta.endpoint_url)
    except AttributeError:
        return "SQS"


def is_unreachable(exc: BaseException) -> bool:
    """True for "the endpoint is not there" errors (as opposed to API errors)."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(exc, BotoConnectionError | HTTPClientError)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def preflight(client: Any, queue_url: str, region: str | None = None) -> str | None:
    """None when the queue answers; else a one-line reason, naming `region` when given.

    Access denied is not an error (a producer may hold only sqs:SendMessage, a consumer only
    what receiving needs).
    """
    from botocore.exceptions import ClientError, NoCredentialsError

    where = f"{region}: " if region else ""
    try:
        client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    except NoCredentialsError:
        return "no AWS credentials found (configure them or pass --profile)"
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
            return f"{where}queue does not exist: {queue_url}"
        if "AccessDenied" in code or "Authorization" in code:
            return None
        return f"{where}{queue_url}: {one_line(exc)}"
    except Exception as exc:
        if is_unreachable(exc):
            endpoint = describe_endpoint(client)
            suffix = f" ({region})" if region else ""
            return f"cannot reach SQS at {endpoint}{suffix}: {one_line(exc)}"
        raise
    return None
