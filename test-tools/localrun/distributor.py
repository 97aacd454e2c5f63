"""The real distributor (`orchestrator.distributor.handler`) as a local handler, and a tally.

`distributor_handler(environ, session)` returns a ``handler(event, context)`` that runs each
poller thread's invocations in that thread's own distributor, built by
`orchestrator.distributor.handler.build_distributor(environ, session=session)` on its first
invocation, as Lambda gives each concurrent invocation its own container. The response comes
from the
distributor's own `handle` (the code `lambda_handler` runs); `on_report` also receives the
distributor's per-record `BatchReport` (forwarded to which region, duplicate, dead-lettered,
failed).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from localrun.lambda_runtime import ExecutionEnvironments, Handler
from localrun.resources import HIGH_LANE


def build_handler(
    environ: Mapping[str, str],
    session: Any,
    on_report: Callable[[Any], None] | None = None,
) -> Handler:
    """One distributor (one "container"); its `handle` bound method is the handler."""
    from orchestrator.distributor.handler import build_distributor  # the code under test

    return build_distributor(environ, session=session, on_report=on_report).handle


def distributor_handler(
    environ: Mapping[str, str],
    session: Any,
    on_report: Callable[[Any], None] | None = None,
) -> ExecutionEnvironments:
    return ExecutionEnvironments(lambda: build_handler(environ, session, on_report))


class DistributionTally:
    """Thread-safe running totals of the distributor's batch reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.dispositions: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        """Per region, both queues."""
        self.lanes: Counter[str] = Counter()
        """Per queue: ``<region>`` (standard) and ``<region> high`` (high-priority)."""
        self.high_priority: set[str] = set()
        """Request ids forwarded to a high-priority queue."""
        self.dead_letter_reasons: Counter[str] = Counter()
        self.outcomes: list[Any] = []
        self.regions: dict[str, str] = {}
        """Request id -> the region it was (last) forwarded to."""

    def __call__(self, report: Any) -> None:
        with self._lock:
            for outcome in report.outcomes.values():
                self.outcomes.append(outcome)
                self.dispositions[outcome.disposition.value] += 1
                if outcome.disposition.value == "forwarded" and outcome.region:
                    self.forwarded[outcome.region] += 1
                    high = bool(getattr(outcome, "high_priority", False))
                    self.lanes[outcome.region + (HIGH_LANE if high else "")] += 1
                    if outcome.request_id:
                        self.regions[outcome.request_id] = outcome.region
                        if high:
                            self.high_priority.add(outcome.request_id)
                if outcome.disposition.value == "dead_lettered":
                    self.dead_letter_reasons[outcome.reason or "?"] += 1

    def forwarded_to(self) -> dict[str, str]:
        with self._lock:
            return dict(self.regions)

    def forwarded_high(self) -> set[str]:
        with self._lock:
            return set(self.high_priority)

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        """(dispositions, forwarded per region), copied."""
        with self._lock:
            return Counter(self.dispositions), Counter(self.forwarded)

    def lane_counts(self) -> Counter[str]:
        """Forwarded per queue (``<region>``, ``<region> high``), copied."""
        with self._lock:
            return Counter(self.lanes)
