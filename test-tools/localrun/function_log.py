"""The function's standard output, kept apart from the console (Lambda sends it to CloudWatch
Logs): while `function_output(path)` is active, ``sys.stdout`` writes to `path` and the
caller prints to the console stream it yields."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


class FunctionLog:
    """A write-only text stream into a file; writes after `close()` are dropped, so a logger
    that captured it (Powertools binds ``sys.stdout`` when created) never fails later."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: TextIO | None = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            if self._file is not None:
                self._file.write(text)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


@contextmanager
def function_output(path: Path) -> Iterator[TextIO]:
    """Send ``sys.stdout`` to `path`; yield the console stream."""
    console = sys.stdout
    log = FunctionLog(path)
    sys.stdout = log
    try:
        yield console
    finally:
        sys.stdout = console
        log.close()
