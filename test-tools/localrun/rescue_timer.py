"""The stranded-work rescue (`orchestrator.rescue`) on a timer, as EventBridge runs it.

The deployed function runs every minute with thresholds of minutes (RESCUE_STALL_SECONDS
120); locally it runs every few seconds with a stall threshold of seconds, so a region whose
workers stop has its backlog moved within a demo's run. The code is the function's own:
`orchestrator.rescue.handler.build_rescue(environ, session=...)` builds the `App` that
``lambda_handler`` runs, from the template's environment plus the local resources
(`StackResources.rescue_environ`), and each tick calls its ``handle`` with a Lambda context
whose remaining time counts down from the template's ``Timeout``.

What differs from AWS: the oldest-message rule is off (``RESCUE_MAX_AGE_SECONDS`` 0: it reads
CloudWatch's ``ApproximateAgeOfOldestMessage``, which moto does not publish), so a region is
judged by the no-consumers rule only; the function's log lines go to their own file and its
EMF metrics are dropped (they would go to stdout, the distributor's log here).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localrun.function_log import FunctionLog
from localrun.lambda_runtime import LambdaContext
from orchestrator.core.loop import BackgroundLoop
from orchestrator.rescue.lanes import region_of


@dataclass(frozen=True)
class RescueRun:
    at: float
    """When the run started, in seconds since the timer started."""
    report: Mapping[str, Any]
    """What the function returned (`RunReport.as_dict`)."""

    # The function reports per lane (``us-east-1``, ``us-east-1:high``); these fold both lanes
    # of a region into the region.
    @property
    def stranded(self) -> Mapping[str, str]:
        """Stranded region (either of its queues) -> reason."""
        found: dict[str, str] = {}
        for lane, reason in (self.report.get("stranded") or {}).items():
            found.setdefault(region_of(lane), reason)
        return found

    def moved(self) -> Counter[tuple[str, str]]:
        """Messages moved whose record now names the target, by (from region, to region)."""
        moved: Counter[tuple[str, str]] = Counter()
        for source, outcome in (self.report.get("regions") or {}).items():
            for target, count in (outcome.get("moved") or {}).items():
                moved[(region_of(source), region_of(target))] += int(count)
        return moved

    def rescued(self) -> Counter[str]:
        """Messages taken out of each stranded region: moved, plus those whose record a worker
        had claimed, so the rescue could not change its region (``superseded``: a copy's
        worker was faster than the record update, or a worker handed the message back on
        SIGTERM after claiming it), and those without a record (``unrecorded``)."""
        taken: Counter[str] = Counter()
        for source, outcome in (self.report.get("regions") or {}).items():
            region = region_of(source)
            taken[region] += sum(int(n) for n in (outcome.get("moved") or {}).values())
            taken[region] += int(outcome.get("superseded", 0)) + int(outcome.get("unrecorded", 0))
        return taken


class RescueTimer:
    """Runs the rescue every `interval` seconds in a background thread until `stop()`."""

    def __init__(
        self,
        environ: Mapping[str, str],
        session: Any,
        *,
        interval: float,
        function_name: str = "inference-rescue",
        timeout: float = 60.0,
        log: Path | None = None,
    ) -> None:
        self._environ = dict(environ)
        self._session = session
        self._function_name = function_name
        self._timeout = timeout
        self._log = FunctionLog(log) if log is not None else None
        self._app: Any = None
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._runs: list[RescueRun] = []
        self._loop = BackgroundLoop(
            lambda _index: self.run_once(),
            name="rescue-timer",
            interval=interval,
            error_backoff=interval,
        )

    def _build(self) -> Any:
        from orchestrator.rescue import handler  # the code under test; a cold start

        if self._log is not None:  # its own log, as each function has its own log group
            stream_handler = handler.logger.registered_handler
            if hasattr(stream_handler, "setStream"):
                stream_handler.setStream(self._log)
        return handler.build_rescue(self._environ, session=self._session)

    def run_once(self) -> RescueRun:
        """One invocation of the function (the timer's step; tests call it directly)."""
        if self._app is None:
            self._app = self._build()
        started = round(time.monotonic() - self._started, 3)
        context = LambdaContext(
            self._function_name, timeout=self._timeout, region=self._environ.get("AWS_REGION", "")
        )
        try:
            report = self._app.handle({"source": "aws.events"}, context)
        finally:
            from orchestrator.rescue import handler

            handler.metrics.clear_metrics()  # EMF would print to stdout (module docstring)
        run = RescueRun(started, report)
        with self._lock:
            self._runs.append(run)
        return run

    def start(self) -> RescueTimer:
        self._started = time.monotonic()
        self._loop.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)
        if self._log is not None:
            self._log.close()

    @property
    def failure(self) -> BaseException | None:
        """The defect that stopped the timer, if one did."""
        return self._loop.failure

    @property
    def runs(self) -> list[RescueRun]:
        with self._lock:
            return list(self._runs)

    def rescued(self) -> int:
        """Messages taken out of stranded regions so far."""
        return sum(sum(run.rescued().values()) for run in self.runs)
