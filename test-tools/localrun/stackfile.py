"""Advertising a running local stack in the stack file: the writer side.

The file's location (`stack_file_path`), its format and its reader (`load_stack`, giving a
`LocalStack`) are `orchestrator.core.stackfile`'s; this module only writes a `LocalStack` in
that format. A process writes the file only when no live stack has claimed it, and removes it
only if it still describes its own stack, so a demo run never breaks a `make local` running in
another terminal.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from localrun.server import endpoint_is_up
from orchestrator.core.stackfile import LocalStack, StackFileError, load_stack


def stack_document(stack: LocalStack) -> dict[str, Any]:
    """The JSON document of `stack`: `LocalStack`'s fields but `path` (where the file is, not
    what it says)."""
    document = asdict(stack)
    del document["path"]
    return document


def live_stack(path: Path) -> LocalStack | None:
    """The stack the file at `path` describes, if its endpoint answers; None when the file is
    missing, unusable, or left by a process that is gone."""
    try:
        stack = load_stack(path)
    except StackFileError:
        return None
    return stack if stack is not None and endpoint_is_up(stack.endpoint_url) else None


def claim_stack_file(stack: LocalStack, *, force: bool = False) -> bool:
    """Write `stack` to `stack.path` unless another live stack holds it (or `force`)."""
    path = stack.path
    if not force and live_stack(path) is not None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(stack_document(stack), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)  # readers never see a half-written file
    return True


def release_stack_file(stack: LocalStack) -> None:
    """Remove `stack.path` if it still describes `stack` (same endpoint)."""
    try:
        current = load_stack(stack.path)
    except StackFileError:
        return  # not ours to judge: leave it for whoever wrote it
    if current is not None and current.endpoint_url == stack.endpoint_url:
        stack.path.unlink(missing_ok=True)
