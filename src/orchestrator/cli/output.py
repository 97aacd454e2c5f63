"""How the commands talk to a person: rich on a terminal, plain text everywhere else.

On a terminal, summaries are coloured tables and progress is a live bar or table (on stderr,
so stdout stays the command's result). When a stream is not a terminal (a pipe, a log, CI),
or with ``--plain``, that stream gets plain text only: no colour, no cursor movement, the
published layouts byte for byte. Errors are always one plain line, ``error: ...``, never
wrapped, whatever the mode.

rich is imported only when a terminal display is used: it is the command-line tool's
dependency, never the Lambda's.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live


def interactive(stream: TextIO) -> bool:
    """True when `stream` is a terminal that can show colour and redraw lines."""
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


class ProgressDisplay(Protocol):
    def update(self, done: int) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def update(self, done: int) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress:
    """Progress for logs: one line per tenth done, and a last line; no cursor movement."""

    def __init__(self, total: int, label: str, unit: str, stream: TextIO) -> None:
        self.total, self.label, self.unit, self.stream = total, label, unit, stream
        self.start = time.monotonic()
        self.done = 0
        self._step = -1

    def _line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        pct = 100 * self.done / self.total if self.total else 100.0
        return f"{self.label} {self.done}/{self.total} ({pct:.1f}%) {rate:.1f} {self.unit}/s"

    def update(self, done: int) -> None:
        self.done = done
        step = 10 * done // self.total if self.total else 10
        if step != self._step:
            self._step = step
            print(self._line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._step != 10:
            print(self._line(), file=self.stream, flush=True)
            self._step = 10


class BarProgress:
    """rich's progress bar on a terminal."""

    def __init__(self, total: int, label: str, unit: str, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.unit = unit
        self.start = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task(label, total=total, rate="")
        self.progress.start()

    def update(self, done: int) -> None:
        elapsed = time.monotonic() - self.start
        rate = f"{done / elapsed:.1f} {self.unit}/s" if elapsed > 0 else ""
        self.progress.update(self.task, completed=done, rate=rate)

    def close(self) -> None:
        self.progress.stop()


class LiveDisplay:
    """A table redrawn in place on stderr while work goes on, with lines printed above it.

    `render` is called from rich's refresh thread, so it must only read state that the
    workers update atomically (or under their own lock)."""

    def __init__(self, output: Output, render: Callable[[], RenderableType] | None) -> None:
        self.output = output
        self._live: Live | None = None
        if render is not None and output.rich_err:
            from rich.live import Live

            self._live = Live(
                get_renderable=render,
                console=output.err_console,
                refresh_per_second=4,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def __enter__(self) -> LiveDisplay:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.stop()

    def print(self, text: str, renderable: RenderableType | None = None) -> None:
        """A result line for stdout. When stdout and stderr are both the terminal, it goes
        through the live display (on stderr) so it lands above the table instead of being
        overwritten by its next redraw; when stdout is redirected, it goes to stdout as is."""
        if self._live is not None and self.output.rich_out:
            self._live.console.print(renderable if renderable is not None else text)
        else:
            self.output.print(text, renderable)


class Output:
    """The two streams of a command and what each can show."""

    def __init__(
        self, *, plain: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.rich_out = not plain and interactive(self.stdout)
        self.rich_err = not plain and interactive(self.stderr)

    @cached_property
    def out_console(self) -> Console:
        from rich.console import Console

        return Console(file=self.stdout, force_terminal=True, highlight=False)

    @cached_property
    def err_console(self) -> Console:
        from rich.console import Console

        return Console(file=self.stderr, force_terminal=True, highlight=False)

    def print(self, text: str = "", renderable: RenderableType | None = None) -> None:
        """`renderable` on a terminal (when given), else `text` exactly."""
        if renderable is not None and self.rich_out:
            self.out_console.print(renderable)
        else:
            print(text, file=self.stdout, flush=True)

    def error(self, message: str) -> None:
        print(f"error: {message}", file=self.stderr, flush=True)

    def note(self, message: str) -> None:
        """A remark on stderr (what the tool inferred, a warning)."""
        if self.rich_err:
            self.err_console.print(f"[dim]{_escape(message)}[/dim]")
        else:
            print(message, file=self.stderr, flush=True)

    def progress(
        self, total: int, label: str, unit: str, *, force: bool = False
    ) -> ProgressDisplay:
        """A bar on a terminal; lines per tenth when `force`d elsewhere; else nothing."""
        display: ProgressDisplay
        if self.rich_err:
            display = BarProgress(total, label, unit, self.err_console)
        elif force:
            display = LineProgress(total, label, unit, self.stderr)
        else:
            display = NoProgress()
        return display

    def live(self, render: Callable[[], RenderableType] | None) -> LiveDisplay:
        return LiveDisplay(self, render)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
