"""Structured JSON logs, one object per line, for the worker process.

Library modules log through ``logging.getLogger(__name__)`` and pass context in ``extra``
(``request_id``, ``request_ids``, ``error_code``...); the command installs `JsonFormatter`
on the root logger, so every line carries ``time``, ``level``, ``logger``, ``message``, the
worker id and whatever context the call added.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from orchestrator.core.timefmt import iso_utc

# Attributes every LogRecord has: anything else came from `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._static = static or {}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self._static,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str, worker_id: str, stream: TextIO | None = None) -> None:
    """JSON lines on `stream` (stderr) for the root logger; botocore kept at WARNING."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter({"worker_id": worker_id}))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
