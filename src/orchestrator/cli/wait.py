"""`orchestrator send --wait`: follow the sent requests' records until each is done.

A request moves through the states of `orchestrator.core.record`: no record yet (still on the
master queue), FORWARDED (dispatched to a region queue), RUNNING (a worker holds it), then
SUCCEEDED, FAILED or EXPIRED (done). The watcher polls only the requests not yet done, with
BatchGetItem, and polls less often while nothing changes (from `POLL_MIN` up to `POLL_MAX`
seconds), so watching a thousand idle requests costs ten reads every few seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.core.record import RequestRecord, RequestStatus

from .records import RequestTable

if TYPE_CHECKING:
    from rich.console import RenderableType

POLL_MIN = 0.5
POLL_MAX = 5.0
QUEUED = "queued"
STAGES = (QUEUED, "dispatched", "running", "done")
_STAGE = {
    RequestStatus.FORWARDED: "dispatched",
    RequestStatus.RUNNING: "running",
    RequestStatus.SUCCEEDED: "done",
    RequestStatus.FAILED: "done",
    RequestStatus.EXPIRED: "done",
}


@dataclass
class WaitReport:
    request_ids: list[str]
    timeout: float
    records: dict[str, RequestRecord] = field(default_factory=dict)
    elapsed: float = 0.0
    timed_out: bool = False
    interrupted: bool = False

    def stages(self) -> Counter[str]:
        """How many requests are at each stage (`STAGES`)."""
        counts = Counter({stage: 0 for stage in STAGES})
        for rid in self.request_ids:
            record = self.records.get(rid)
            counts[_STAGE[record.status] if record else QUEUED] += 1
        return counts

    def outcomes(self) -> Counter[str]:
        """Done requests by final status."""
        return Counter(r.status.value for r in self.records.values() if r.status.is_final)

    @property
    def all_succeeded(self) -> bool:
        return (
            not self.timed_out
            and not self.interrupted
            and all(
                (r := self.records.get(rid)) is not None and r.status is RequestStatus.SUCCEEDED
                for rid in self.request_ids
            )
        )

    def summary(self) -> str:
        stages = self.stages()
        done = ", ".join(f"{n} {status.lower()}" for status, n in sorted(self.outcomes().items()))
        text = (
            f"{stages[QUEUED]} queued, {stages['dispatched']} dispatched, "
            f"{stages['running']} running, {stages['done']} done"
        )
        return f"{text} ({done})" if done else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "timeout_seconds": self.timeout,
            "elapsed_seconds": round(self.elapsed, 3),
            "timed_out": self.timed_out,
            "interrupted": self.interrupted,
            "stages": dict(self.stages()),
            "outcomes": dict(self.outcomes()),
            "all_succeeded": self.all_succeeded,
            "records": {rid: r.as_dict() for rid, r in self.records.items()},
        }


def result_line(record: RequestRecord) -> str:
    """One line per finished request: its id, status, region and result or error."""
    head = f"{record.request_id}  {record.status.value}  {record.region}"
    if record.status is RequestStatus.SUCCEEDED:
        return f"{head}  {record.result or record.result_location or '(no result)'}"
    error = ": ".join(p for p in (record.error_code, record.error_message) if p)
    return f"{head}  {error or '(no error recorded)'}"


def result_text(record: RequestRecord) -> RenderableType:
    from rich.text import Text

    style = "green" if record.status is RequestStatus.SUCCEEDED else "red"
    return Text(result_line(record), style=style)


def render_stages(report: WaitReport, elapsed: float) -> RenderableType:
    from rich.table import Table

    stages = report.stages()
    table = Table(title=f"Waiting for {len(report.request_ids)} requests", title_justify="left")
    for stage in STAGES:
        table.add_column(stage, justify="right")
    table.add_column("elapsed", justify="right")
    table.add_row(
        *(str(stages[stage]) for stage in STAGES),
        f"{elapsed:.0f} / {report.timeout:g} s",
    )
    return table


class Waiter:
    """Polls the records of `request_ids` until all are done, `timeout` passes or Ctrl-C."""

    def __init__(
        self,
        table: RequestTable,
        request_ids: Sequence[str],
        *,
        timeout: float,
        on_done: Callable[[RequestRecord], None] = lambda record: None,
        on_change: Callable[[WaitReport], None] = lambda report: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table = table
        self.report = WaitReport(list(dict.fromkeys(request_ids)), timeout)
        self.on_done = on_done
        self.on_change = on_change
        self.clock = clock
        self.sleep = sleep
        self._start: float | None = None

    def elapsed(self) -> float:
        """Seconds since `run` began (for a display refreshed between polls)."""
        return 0.0 if self._start is None else self.clock() - self._start

    def _poll(self, pending: list[str]) -> bool:
        """Read the pending records; True when any moved on."""
        changed = False
        for rid, record in self.table.get_many(pending).items():
            previous = self.report.records.get(rid)
            if previous is None or previous.status is not record.status:
                changed = True
                self.report.records[rid] = record
                if record.status.is_final:
                    self.on_done(record)
        return changed

    def _pending(self) -> list[str]:
        records = self.report.records
        return [
            rid
            for rid in self.report.request_ids
            if not ((record := records.get(rid)) and record.status.is_final)
        ]

    def run(self) -> WaitReport:
        start = self._start = self.clock()
        deadline = start + self.report.timeout
        interval = POLL_MIN
        try:
            pending = self._pending()
            while pending:
                changed = self._poll(pending)
                self.report.elapsed = self.clock() - start
                if changed:
                    self.on_change(self.report)
                pending = self._pending()
                remaining = deadline - self.clock()
                if not pending:
                    break
                if remaining <= 0:
                    self.report.timed_out = True
                    break
                # poll often while requests move, less often while they wait
                interval = POLL_MIN if changed else min(POLL_MAX, interval * 2)
                self.sleep(min(interval, remaining))
        except KeyboardInterrupt:
            self.report.interrupted = True
        self.report.elapsed = self.clock() - start
        return self.report
