"""`.local-stack.json`: where the running local stack is (format in docs/contracts.md).

At the repository root unless ``ORCHESTRATOR_STACK_FILE`` names another path. A process writes
it only when no live stack has claimed it, and removes it only if it still describes its own
stack, so a demo run never breaks a `make local` running in another terminal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from localrun.server import endpoint_is_up
from orchestrator.core.stackfile import STACK_FILE_ENV, STACK_FILE_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]


def stack_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where this checkout's local stack advertises itself: the repository root."""
    override = (os.environ if environ is None else environ).get(STACK_FILE_ENV)
    if override:
        return Path(override).expanduser()
    return REPO_ROOT / STACK_FILE_NAME


def read_stack_file(path: Path) -> dict[str, Any] | None:
    """The document, or None when the file is missing or unreadable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def live_stack_document(path: Path) -> dict[str, Any] | None:
    """The document if its endpoint answers (a stale file left by a killed process does not)."""
    document = read_stack_file(path)
    url = document.get("endpoint_url") if document else None
    return document if isinstance(url, str) and endpoint_is_up(url) else None


def claim_stack_file(path: Path, document: Mapping[str, Any], *, force: bool = False) -> bool:
    """Write `document` unless another live stack holds the file (or `force`)."""
    if not force and live_stack_document(path) is not None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return True


def release_stack_file(path: Path, document: Mapping[str, Any]) -> None:
    """Remove the file if it still describes `document`'s stack."""
    current = read_stack_file(path)
    if current is not None and current.get("endpoint_url") == document.get("endpoint_url"):
        path.unlink(missing_ok=True)
