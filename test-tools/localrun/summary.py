"""What a demo run produced, and the figures drawn from it (the audit is `localrun.audit`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localrun.depths import DepthSample
from localrun.evidence import Notification, ResultRead
from localrun.models import Execution, PredictCall
from localrun.rescue_timer import RescueRun
from localrun.traffic import SentMessage
from orchestrator.core.dead_letter import DeadLetter
from orchestrator.core.record import RequestRecord, RequestStatus
from orchestrator.core.sqs import QueueDepth
from orchestrator.core.stats import percentile
from orchestrator.core.timefmt import parse_iso

HIGH_PRIORITY = "high"
STANDARD = "standard"
"""The lanes latency is shown by: high-priority requests, and the others (normal and low,
which share the standard queues)."""

MASTER = "master"
DEAD_LETTERS = "dead-letter"
NOTIFICATIONS = "notifications"


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class RegionRow:
    region: str
    consumers: int
    """Worker processes (one per GPU)."""
    capacity_share: float
    succeeded: int
    """Requests whose successful run was in this region."""
    share: float
    forwarded: int
    p50_latency: float | None
    mean_batch: float | None


@dataclass
class DemoResult:
    settings: Mapping[str, Any]
    capacities: Mapping[str, int]
    sent: Sequence[SentMessage]
    records: Mapping[str, RequestRecord]
    """The request table, by request id."""
    executions: Sequence[Execution]
    """From the simulated model's logs: one per request per predict call."""
    calls: Sequence[PredictCall]
    results: Mapping[str, ResultRead]
    """SUCCEEDED requests' results as read back (inline or from S3)."""
    notifications: Sequence[Notification]
    dead_letters: Sequence[DeadLetter]
    """The master queue's dead-letter queue (the distributor's)."""
    region_dead_letters: Mapping[str, Sequence[DeadLetter]]
    """Each region's dead-letter queue (the workers')."""
    samples: Sequence[DepthSample]
    final_depths: Mapping[str, QueueDepth]
    """Every queue at the end but the dead-letter queues, which the audit drains."""
    dispositions: Counter[str] = field(default_factory=Counter)
    """The distributor's own count of record outcomes."""
    forwarded: Counter[str] = field(default_factory=Counter)
    forwarded_to: Mapping[str, str] = field(default_factory=dict)
    """Request id -> the region the distributor forwarded it to (its last forward)."""
    forwarded_high: set[str] = field(default_factory=set)
    """Request ids the distributor forwarded to a region's high-priority queue."""
    invocations: int = 0
    failed_invocations: int = 0
    cold_starts: int = 0
    rescue_runs: Sequence[RescueRun] = ()
    stopped: Mapping[str, float] = field(default_factory=dict)
    """Region -> seconds after the first send when its workers were sent SIGTERM."""
    first_send_at: float = 0.0
    """Wall-clock seconds of the first send."""
    worker_exits: Mapping[str, int | None] = field(default_factory=dict)
    send_seconds: float = 0.0
    done_seconds: float | None = None
    """From the first send until everything was done; None if the run timed out."""
    total_seconds: float = 0.0
    checks: list[Check] = field(default_factory=list)
    thread_failures: list[str] = field(default_factory=list)
    """Defects that stopped a background loop, or a worker that died: the run failed."""

    @property
    def passed(self) -> bool:
        checks_pass = bool(self.checks) and all(check.passed for check in self.checks)
        return checks_pass and not self.thread_failures

    def sent_of_kind(self, kind: str) -> list[SentMessage]:
        return [s for s in self.sent if s.planned.kind == kind]

    def planned_requests(self) -> dict[str, SentMessage]:
        """Each valid request's first copy, by request id."""
        return {
            str(s.planned.request_id): s for s in self.sent_of_kind("valid") if s.planned.request_id
        }

    def expected_status(self, request_id: str) -> RequestStatus:
        sent = self.planned_requests().get(request_id)
        failing = sent is not None and sent.planned.simulate == "permanent"
        return RequestStatus.FAILED if failing else RequestStatus.SUCCEEDED


def first_sent(result: DemoResult) -> dict[str, float]:
    found: dict[str, float] = {}
    for sent in result.sent:
        if sent.planned.kind != "malformed" and sent.planned.request_id:
            found.setdefault(sent.planned.request_id, sent.sent_at)
    return found


def latencies(result: DemoResult) -> dict[str, float]:
    """Seconds from a request's first send to its final record (SUCCEEDED or FAILED)."""
    sent = first_sent(result)
    out: dict[str, float] = {}
    for request_id, record in result.records.items():
        finished = parse_iso(record.finished_at)
        if request_id in sent and finished is not None and record.status.is_final:
            out[request_id] = max(finished - sent[request_id], 0.0)
    return out


def latency_percentiles(result: DemoResult) -> dict[str, float]:
    values = list(latencies(result).values())
    if not values:
        return {}
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
    }


def lane_of(sent: SentMessage) -> str:
    return HIGH_PRIORITY if sent.planned.priority == HIGH_PRIORITY else STANDARD


def latency_by_priority(result: DemoResult) -> dict[str, tuple[int, dict[str, float]]]:
    """Per lane (high, standard): (requests finished, p50/p90/p99 of their latency), both
    lanes always present."""
    planned = result.planned_requests()
    values: dict[str, list[float]] = {HIGH_PRIORITY: [], STANDARD: []}
    for request_id, seconds in latencies(result).items():
        if request_id in planned:
            values[lane_of(planned[request_id])].append(seconds)
    return {
        lane: (
            len(found),
            {f"p{q}": percentile(found, q) for q in (50, 90, 99)} if found else {},
        )
        for lane, found in values.items()
    }


def high_priority_requests(result: DemoResult) -> set[str]:
    return {
        rid for rid, sent in result.planned_requests().items() if lane_of(sent) == HIGH_PRIORITY
    }


def succeeded_region(result: DemoResult) -> dict[str, str]:
    """Request id -> region of the worker whose run of it succeeded."""
    return {e.request_id: e.region for e in result.executions if e.succeeded}


def distribution(result: DemoResult) -> list[RegionRow]:
    where = succeeded_region(result)
    counts = Counter(where.values())
    total = sum(counts.values()) or 1
    capacity = sum(result.capacities.values()) or 1
    latency = latencies(result)
    by_region: dict[str, list[float]] = {}
    for request_id, region in where.items():
        if request_id in latency:
            by_region.setdefault(region, []).append(latency[request_id])
    sizes: dict[str, list[int]] = {}
    for call in result.calls:
        sizes.setdefault(call.region, []).append(call.size)
    return [
        RegionRow(
            region=region,
            consumers=consumers,
            capacity_share=consumers / capacity,
            succeeded=counts[region],
            share=counts[region] / total,
            forwarded=result.forwarded[region],
            p50_latency=percentile(by_region[region], 50) if by_region.get(region) else None,
            mean_batch=sum(sizes[region]) / len(sizes[region]) if sizes.get(region) else None,
        )
        for region, consumers in result.capacities.items()
    ]


def batch_sizes(result: DemoResult) -> Counter[int]:
    """Predict calls by batch size."""
    return Counter(call.size for call in result.calls)


def dead_letter_reasons(letters: Sequence[DeadLetter]) -> list[tuple[str, int, list[str]]]:
    """(error_code, count, up to three distinct error messages), most frequent first."""
    counts = Counter(d.error_code or "(none)" for d in letters)
    examples: dict[str, list[str]] = {}
    for dead in letters:
        seen = examples.setdefault(dead.error_code or "(none)", [])
        if dead.error_message and dead.error_message not in seen and len(seen) < 3:
            seen.append(dead.error_message)
    return [(code, count, examples.get(code, [])) for code, count in counts.most_common()]


def duplicates_dropped(result: DemoResult) -> int:
    """Client retries that did not lead to a second successful run."""
    runs = Counter(e.request_id for e in result.executions if e.succeeded)
    extra = sum(n - 1 for n in runs.values() if n > 1)
    return max(len(result.sent_of_kind("duplicate")) - extra, 0)


def results_by_place(result: DemoResult) -> Counter[str]:
    return Counter(read.where for read in result.results.values() if read.problem is None)


def rescued(result: DemoResult) -> tuple[Counter[tuple[str, str]], Counter[str]]:
    """What the rescue did: messages moved with their record updated, by (from region, to
    region); and every message it took out of each stranded region (`RescueRun.rescued`)."""
    moved: Counter[tuple[str, str]] = Counter()
    taken: Counter[str] = Counter()
    for run in result.rescue_runs:
        moved.update(run.moved())
        taken.update(run.rescued())
    return moved, taken


def stranded_first_seen(result: DemoResult) -> dict[str, tuple[float, str]]:
    """Region -> (seconds since the rescue timer started, reason) of its first stranding."""
    seen: dict[str, tuple[float, str]] = {}
    for run in result.rescue_runs:
        for region, reason in run.stranded.items():
            seen.setdefault(region, (run.at, reason))
    return seen


def ran_elsewhere(result: DemoResult, region: str) -> set[str]:
    """Requests the distributor forwarded to `region` that succeeded in another region (the
    rescue moved them)."""
    where = succeeded_region(result)
    return {
        rid
        for rid, forwarded in result.forwarded_to.items()
        if forwarded == region and where.get(rid, region) != region
    }
