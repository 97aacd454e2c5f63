"""What `make local`'s table shows, read every refresh: queue depths, forwarded and done
counts, each region's live workers (their presence items, as routing reads them), the
rescue's moves and the notifications the callback topic delivered."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from localrun.console_view import RegionWorkers, Snapshot
from localrun.depths import read_depths
from localrun.distributor import DistributionTally
from localrun.evidence import drain_notifications
from localrun.poller import SqsPoller
from localrun.rescue_timer import RescueTimer
from localrun.stack import RunningStack
from localrun.workers import WorkerFleet
from orchestrator.core.errors import AWS_ERRORS, one_line
from orchestrator.core.presence import live_workers
from orchestrator.core.sqs import QueueDepth


class Watch:
    """Reads what the table shows; keeps the last figures when a read fails."""

    def __init__(
        self,
        local: RunningStack,
        poller: SqsPoller,
        fleet: WorkerFleet | None,
        rescue: RescueTimer,
        tally: DistributionTally,
    ) -> None:
        stack = local.stack
        self._local = local
        self._queues: dict[str, tuple[Any, str]] = {
            "master": (local.sqs[stack.primary_region], stack.master_queue_url),
            **{name: (local.sqs[r], url) for name, (r, url) in stack.inference_queues().items()},
            "dead-letter": (local.sqs[stack.primary_region], stack.dead_letter_queue_url),
        }
        self._poller = poller
        self._fleet = fleet
        self._rescue = rescue
        self._tally = tally
        self._regions = list(stack.region_queues)
        self._lanes = list(stack.inference_queues())
        self._depths: dict[str, QueueDepth] = {}
        self._workers: dict[str, RegionWorkers] | None = None
        self._notifications = 0
        self._started = time.monotonic()

    def defect(self) -> str | None:
        for what, failure in (
            ("pollers", _named(self._poller.failure)),
            ("rescue", _named(self._rescue.failure)),
            ("workers", self._fleet.failure if self._fleet else None),
        ):
            if failure is not None:
                return f"{what} stopped: {failure} (see its log)"
        return None

    def snapshot(self) -> Snapshot:
        problem = self.defect()
        try:
            self._depths = read_depths(self._queues)
            self._workers = self._presence()
            self._notifications += self._drain_notifications()
        except AWS_ERRORS as exc:  # keep the stack up; show the problem beside the last figures
            problem = problem or f"read failed: {one_line(exc)}"
        dispositions, _ = self._tally.snapshot()
        forwarded = self._tally.lane_counts()
        uptime = int(time.monotonic() - self._started)
        return Snapshot(
            depths=self._depths,
            forwarded={lane: forwarded.get(lane, 0) for lane in self._lanes},
            processed=dict(self._fleet.done_per_region()) if self._fleet else None,
            counts=_counts(self._poller, dispositions, self._rescue, self._notifications),
            uptime=uptime,
            problem=problem,
            workers=self._workers,
        )

    def _presence(self) -> dict[str, RegionWorkers] | None:
        stack = self._local.stack
        if not stack.workers_table:
            return None
        now = time.time()
        found = {}
        for region in self._regions:
            items = live_workers(self._local.dynamodb, stack.workers_table, region, now)
            found[region] = RegionWorkers(
                live=len(items),
                capacity=sum(w.available_capacity for w in items),
                busy=sum(w.busy for w in items),
                draining=sum(1 for w in items if w.draining),
            )
        return found

    def _drain_notifications(self) -> int:
        """Notifications delivered to the subscribed queue since the last look (read and
        deleted: nothing else consumes that queue)."""
        stack = self._local.stack
        if not stack.notification_queue_url:
            return 0
        client = self._local.sqs[stack.primary_region]
        return len(drain_notifications(client, stack.notification_queue_url))


def _named(failure: BaseException | None) -> str | None:
    return None if failure is None else f"{type(failure).__name__}: {failure}"


def _counts(
    poller: SqsPoller, dispositions: Mapping[str, int], rescue: RescueTimer, notifications: int
) -> str:
    invocations = poller.invocations
    errors = sum(1 for i in invocations if i.error)
    moved = rescue.rescued()
    return (
        f"invocations {len(invocations)} ({errors} failed) · duplicates "
        f"{dispositions.get('duplicate', 0)} · dead-lettered "
        f"{dispositions.get('dead_lettered', 0)} · failed {dispositions.get('failed', 0)}"
        f" · rescued {moved} · notifications {notifications}"
    )
