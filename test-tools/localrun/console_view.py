"""`make local`'s table of queue depths: a rich live table on a terminal, plain lines
otherwise (a pipe, a log file, CI, or ``--plain``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TextIO

from localrun.resources import HIGH_LANE
from orchestrator.core.sqs import QueueDepth

if TYPE_CHECKING:
    from rich.console import RenderableType


@dataclass(frozen=True)
class RegionWorkers:
    """A region's live workers, from their presence items (what routing reads)."""

    live: int
    """Workers whose item has not expired."""
    capacity: int
    """Requests the non-draining ones can hold at once."""
    busy: int
    """Requests in the batches they are running."""
    draining: int = 0

    @property
    def text(self) -> str:
        drain = f" ({self.draining} draining)" if self.draining else ""
        return f"{self.live}{drain} cap {self.capacity} busy {self.busy}"


@dataclass(frozen=True)
class Snapshot:
    """What the table shows at one moment."""

    depths: Mapping[str, QueueDepth]
    """Every queue by display name: master, the regions, dead-letter."""
    forwarded: Mapping[str, int]
    """Requests this stack's pollers forwarded, per region queue (``<region>`` the standard
    one, ``<region> high`` the high-priority one)."""
    processed: Mapping[str, int] | None
    """Requests the workers ran to their end, per region, both queues (None: no workers)."""
    counts: str
    """Invocations and record outcomes, one line."""
    uptime: int
    """Seconds."""
    problem: str | None = None
    """Something the user must know (a stopped loop, a failed depth read)."""
    workers: Mapping[str, RegionWorkers] | None = None
    """Per region, from the presence table (None: not read)."""

    @property
    def footer(self) -> str:
        return f"{self.counts} · up {self.uptime // 60:02d}:{self.uptime % 60:02d}"


class View(Protocol):
    def __enter__(self) -> View: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def show(self, snapshot: Snapshot) -> None: ...


def plain_line(
    depths: Mapping[str, QueueDepth],
    forwarded: Mapping[str, int],
    processed: Mapping[str, int] | None,
    counts: str,
    workers: Mapping[str, RegionWorkers] | None = None,
) -> str:
    """One line: ``name waiting+in flight`` per queue, then forwarded (and done) counts and
    the region's live workers (on its standard queue's part: they serve both)."""
    parts = []
    for name, depth in depths.items():
        part = f"{name} {depth.visible}+{depth.in_flight}"
        if name in forwarded:
            part += f" fwd {forwarded[name]}"
        if name in forwarded and not name.endswith(HIGH_LANE):
            if processed is not None:
                part += f" done {processed.get(name, 0)}"
            if workers is not None:
                part += f" workers {_workers_text(workers.get(name))}"
        parts.append(part)
    return " | ".join([*parts, counts])


def _workers_text(workers: RegionWorkers | None) -> str:
    return workers.text if workers is not None else "0"


class PlainView:
    """One timestamped line whenever a figure changes, and one a minute while none does."""

    HEARTBEAT_SECONDS = 60.0

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._last = ""
        self._last_at = 0.0

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.flush()

    def show(self, snapshot: Snapshot) -> None:
        line = plain_line(
            snapshot.depths,
            snapshot.forwarded,
            snapshot.processed,
            snapshot.counts,
            snapshot.workers,
        )
        if snapshot.problem:
            line += f" | {snapshot.problem}"
        now = self._clock()
        if line != self._last or now - self._last_at > self.HEARTBEAT_SECONDS:
            self._stream.write(time.strftime("%H:%M:%S ") + line + "\n")
            self._stream.flush()
            self._last, self._last_at = line, now


class LiveView:
    """A rich table redrawn in place."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console  # the command-line extra; imported when drawn
        from rich.live import Live

        self._console = Console(file=stream)
        # Not redirect_stdout: sys.stdout is the function's log (function_output) meanwhile.
        self._live = Live(
            console=self._console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=True,  # warnings print above the table instead of through it
        )

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def show(self, snapshot: Snapshot) -> None:
        self._live.update(render_table(snapshot), refresh=True)


def render_table(snapshot: Snapshot) -> RenderableType:
    """The rich renderable of `snapshot`."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("queue")
    for title in ("waiting", "in flight", "forwarded"):
        table.add_column(title, justify="right")
    if snapshot.processed is not None:
        table.add_column("done", justify="right")
    if snapshot.workers is not None:
        for title in ("workers", "capacity", "busy"):
            table.add_column(title, justify="right")
    for name, depth in snapshot.depths.items():
        cells = [name, str(depth.visible), str(depth.in_flight)]
        if name in snapshot.forwarded:
            cells.append(str(snapshot.forwarded[name]))
        if name in snapshot.forwarded and not name.endswith(HIGH_LANE):
            if snapshot.processed is not None:
                cells.append(str(snapshot.processed.get(name, 0)))
            if snapshot.workers is not None:
                live = snapshot.workers.get(name) or RegionWorkers(0, 0, 0)
                drain = f" ({live.draining} draining)" if live.draining else ""
                cells += [f"{live.live}{drain}", str(live.capacity), str(live.busy)]
        style = "red" if name == "dead-letter" and depth.total else None
        table.add_row(*cells, style=style)
    parts: list[RenderableType] = [table, Text(snapshot.footer, style="dim")]
    if snapshot.problem:
        parts.append(Text(snapshot.problem, style="bold red"))
    return Group(*parts)


def make_view(stream: TextIO, plain: bool) -> View:
    """A live table on a terminal unless `plain`; plain lines otherwise."""
    if plain or not stream.isatty():
        return PlainView(stream)
    return LiveView(stream)
