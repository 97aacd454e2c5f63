"""Reading an SQS event file for `orchestrator invoke`, with errors that name the file, the
place and the likely cause.

The commonest broken file is SAM's own: ``sam local generate-event sqs receive-message
--body '{"request_id": ...}'`` pastes the body between quotes without escaping it, so the
event is not JSON. That case gets its own explanation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# `"body": "{` or `"body": "[`: a JSON document pasted into the string unescaped.
_UNESCAPED_BODY = re.compile(r'^\s*"body"\s*:\s*"\s*[{\[]')
_SHOWN_CHARS = 100  # of a long line around the error


class EventFileError(ValueError):
    """The event file cannot be used; the message says where and why."""


def load_event(path: Path) -> dict[str, Any]:
    """The event in `path`: an object with a ``Records`` list of objects."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EventFileError(f"{path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise EventFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventFileError(describe_json_error(path, text, exc)) from exc
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        raise EventFileError(f"{path}: not an SQS event (no Records list)")
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise EventFileError(
                f"{path}: Records[{index}] is a {type(record).__name__}, not an object"
            )
    return event


def describe_json_error(path: Path, text: str, exc: json.JSONDecodeError) -> str:
    """Where the JSON breaks, the line with a caret under the column, and the likely cause."""
    lines = text.splitlines()
    line = lines[exc.lineno - 1] if 0 < exc.lineno <= len(lines) else ""
    parts = [f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
    if line:
        start = max(0, exc.colno - 1 - _SHOWN_CHARS // 2)
        shown = ("..." if start else "") + line[start : start + _SHOWN_CHARS]
        caret = exc.colno - 1 - start + (3 if start else 0)
        gutter = f"  {exc.lineno} | "
        parts += [gutter + shown, " " * len(gutter) + " " * caret + "^"]
    if _UNESCAPED_BODY.match(line):
        parts += [
            'The "body" value holds JSON whose quotes are not escaped. SAM\'s '
            "`sam local generate-event sqs receive-message --body '{...}'` writes the body "
            "as given, so a JSON body breaks the event.",
            'Escape every " inside the body as \\" (in the file, or when generating it: '
            '--body \'{\\"request_id\\": \\"r-1\\", ...}\').',
        ]
    return "\n".join(parts)
