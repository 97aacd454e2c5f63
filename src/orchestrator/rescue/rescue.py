"""One rescue run: look at every region queue, judge which are stranded, move their backlogs.

Each region has a standard queue and, when configured, a high-priority queue: its *lanes*
(`orchestrator.rescue.lanes`), judged and rescued one by one, keyed by lane key (the region,
or ``<region>:high``) in the memory and the report.

1. Read the stall memory (the request table). If the table cannot be read, the run stops
   here: every move would need it too.
2. Observe every queue in parallel (`Observer`).
3. Update each queue's "stalled since" (`core.stranding.track_stall`) and save it when it
   changed; judge each queue (`core.stranding.stranded_reason`).
4. Rescue the stranded queues concurrently, one thread each, sharing one message budget and
   one view of the healthy regions (`TargetPicker`). A region with a stranded queue takes no
   rescued work.

A defect (a `TypeError`, a `KeyError`) is not caught: the run fails once every region's
thread has stopped, and the messages it had received but not sent come back to their queue
when their visibility timeout runs out.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.core.errors import one_line
from orchestrator.core.routing import RegionLoad
from orchestrator.core.stranding import (
    QueueObservation,
    StrandReason,
    Thresholds,
    region_load,
    stranded_reason,
    track_stall,
)
from orchestrator.rescue.lanes import HIGH_SUFFIX, region_of
from orchestrator.rescue.memory import MemoryUnavailableError, StallMemory
from orchestrator.rescue.mover import Mover, RegionOutcome
from orchestrator.rescue.observe import Observer
from orchestrator.rescue.targets import Budget, TargetPicker

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RunReport:
    observations: dict[str, QueueObservation | None] = field(default_factory=dict)
    stalled_since: dict[str, float] = field(default_factory=dict)
    stranded: dict[str, StrandReason] = field(default_factory=dict)
    outcomes: dict[str, RegionOutcome] = field(default_factory=dict)
    skipped: str | None = None
    """Why nothing was judged this run (the memory could not be read)."""

    @property
    def moved(self) -> int:
        return sum(outcome.moved_total + outcome.unrecorded for outcome in self.outcomes.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary (the Lambda's return value and log line)."""
        return {
            "skipped": self.skipped,
            "stranded": {region: reason.value for region, reason in self.stranded.items()},
            "stalled_since": self.stalled_since,
            "observations": {
                region: None
                if o is None
                else {
                    "visible": o.visible,
                    "in_flight": o.in_flight,
                    "oldest_age": o.oldest_age,
                    "live_capacity": o.live_capacity,
                }
                for region, o in self.observations.items()
            },
            "regions": {
                region: {
                    "reason": o.reason.value,
                    "moved": dict(o.moved),
                    "superseded": o.superseded,
                    "unrecorded": o.unrecorded,
                    "handed_back": o.handed_back,
                    "pinned": o.pinned,
                    "left_hidden": o.left_hidden,
                    "not_deleted": o.not_deleted,
                    "stopped": o.stopped.value,
                }
                for region, o in self.outcomes.items()
            },
        }


class Rescue:
    def __init__(
        self,
        *,
        memory: StallMemory,
        observer: Observer,
        mover: Mover,
        executor: Executor,
        thresholds: Thresholds,
        strategy: str,
        max_depth: int,
        max_messages: int,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self._memory = memory
        self._observer = observer
        self._mover = mover
        self._executor = executor
        self._thresholds = thresholds
        self._strategy = strategy
        self._max_depth = max_depth
        self._max_messages = max_messages
        self._clock = clock
        self._rng = rng or random.Random()

    def run(self, time_left: Callable[[], float] = lambda: float("inf")) -> RunReport:
        """One run; `time_left` gives the seconds the invocation has left."""
        report = RunReport()
        now = self._clock()
        try:
            previous = self._memory.load()
        except MemoryUnavailableError as exc:
            logger.warning("run skipped: %s", one_line(exc))
            report.skipped = "memory-unreadable"
            return report
        report.observations = self._observer.observe(now)
        report.stalled_since, report.stranded = self._judge(previous, report.observations, now)
        if report.stalled_since != previous:
            try:
                self._memory.save(report.stalled_since, now)
            except MemoryUnavailableError as exc:  # the stall clocks restart next run at worst
                logger.warning("%s", one_line(exc))
        if report.stranded:
            report.outcomes = self._rescue(report.stranded, report.observations, time_left)
        return report

    def _judge(
        self,
        previous: Mapping[str, float],
        observations: Mapping[str, QueueObservation | None],
        now: float,
    ) -> tuple[dict[str, float], dict[str, StrandReason]]:
        stalled_since: dict[str, float] = {}
        stranded: dict[str, StrandReason] = {}
        for region, observation in observations.items():
            if observation is None:  # unreadable this run: keep what was known
                if region in previous:
                    stalled_since[region] = previous[region]
                continue
            since = track_stall(previous.get(region), observation, now)
            if since is not None:
                stalled_since[region] = since
            reason = stranded_reason(observation, since, now, self._thresholds)
            if reason is not None:
                stranded[region] = reason
        return stalled_since, stranded

    def _rescue(
        self,
        stranded: Mapping[str, StrandReason],
        observations: Mapping[str, QueueObservation | None],
        time_left: Callable[[], float],
    ) -> dict[str, RegionOutcome]:
        unknown = [region_of(key) for key, o in observations.items() if o is None]
        picker = TargetPicker(
            region_loads(observations),
            strategy=self._strategy,
            max_depth=self._max_depth,
            avoid={region_of(key) for key in [*stranded, *unknown]},
            rng=self._rng,
        )
        budget = Budget(self._max_messages)
        futures: dict[str, Future[RegionOutcome]] = {
            region: self._executor.submit(
                self._mover.rescue_region, region, reason, picker, budget, time_left
            )
            for region, reason in stranded.items()
        }
        wait(futures.values())  # every region's thread stops before a defect is raised
        return {region: future.result() for region, future in futures.items()}


def region_loads(observations: Mapping[str, QueueObservation | None]) -> list[RegionLoad]:
    """The routing's view of each readable region, from its lanes' observations: the backlog of
    both queues, the region's in-flight count (each lane carries the total) and live capacity,
    and the high-priority backlog apart."""
    loads: list[RegionLoad] = []
    for key, observation in observations.items():
        if observation is None or key.endswith(HIGH_SUFFIX):
            continue
        high = observations.get(key + HIGH_SUFFIX)
        load = region_load(key, observation)
        if high is not None:
            load = replace(load, visible=load.visible + high.visible, high_visible=high.visible)
        loads.append(load)
    return loads
