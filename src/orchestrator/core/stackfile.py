"""The local stack file: where a running local stack (moto) says its queues and table are.

`.local-stack.json` (written by `make local` / the demo at the repository root; path override
with the environment variable ``ORCHESTRATOR_STACK_FILE``; readers look for it in the current
directory and its parents) has the format fixed in docs/contracts.md::

    {"endpoint_url": "http://127.0.0.1:PORT", "primary_region": "us-east-1",
     "master_queue_url": "...", "dead_letter_queue_url": "...", "table_name": "...",
     "region_queues": {"us-east-1": "...", "us-west-2": "...", "us-west-1": "..."}}

A missing file means "no local stack": the tools then need their flags. A file that exists but
cannot be read, or names something that is not a region or an endpoint, is an error
(`StackFileError`), never silently ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orchestrator.core.errors import OrchestratorError
from orchestrator.core.regions import is_region_name

STACK_FILE_ENV = "ORCHESTRATOR_STACK_FILE"
STACK_FILE_NAME = ".local-stack.json"
DEFAULT_REGION = "us-east-1"


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


class StackFileError(OrchestratorError):
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

    def region_of(self, queue_url: str) -> str | None:
        """The region this stack put `queue_url` in (its queue URLs do not say), else None."""
        if queue_url in (self.master_queue_url, self.dead_letter_queue_url):
            return self.primary_region
        for region, url in self.region_queues.items():
            if url == queue_url:
                return region
        return None


def _require_str(doc: dict[str, Any], key: str, path: Path) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise StackFileError(f"{path}: {key!r} must be a non-empty string")
    return value


def _optional_str(doc: dict[str, Any], key: str, path: Path) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise StackFileError(f"{path}: {key!r} must be a string")
    return value or None


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
    primary = _optional_str(doc, "primary_region", path) or DEFAULT_REGION
    for region in (primary, *queues):
        if not is_region_name(region):
            raise StackFileError(f"{path}: {region!r} is not a region name")
    endpoint = _require_str(doc, "endpoint_url", path)
    if urlsplit(endpoint).scheme not in ("http", "https"):
        raise StackFileError(f"{path}: 'endpoint_url' must start with http:// or https://")
    return LocalStack(
        path=path,
        endpoint_url=endpoint,
        primary_region=primary,
        master_queue_url=_require_str(doc, "master_queue_url", path),
        dead_letter_queue_url=_optional_str(doc, "dead_letter_queue_url", path),
        table_name=_optional_str(doc, "table_name", path),
        region_queues=dict(queues),
    )
