"""What a demo run produced, the figures drawn from it, and the exactly-once audit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localrun.depths import DepthSample
from localrun.traffic import SentMessage
from localrun.workers import Completion
from orchestrator.core.dead_letter import DeadLetter
from orchestrator.core.sqs import QueueDepth
from orchestrator.core.stats import percentile

MASTER = "master"
DEAD_LETTERS = "dead-letter"


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class RegionRow:
    region: str
    consumers: int
    capacity_share: float
    processed: int
    share: float
    forwarded: int
    p50_latency: float | None


@dataclass
class DemoResult:
    settings: Mapping[str, Any]
    capacities: Mapping[str, int]
    sent: Sequence[SentMessage]
    completions: Sequence[Completion]
    dead_letters: Sequence[DeadLetter]
    samples: Sequence[DepthSample]
    final_depths: Mapping[str, QueueDepth]
    """Every queue at the end: region names, their ``<region> DLQ``, MASTER, DEAD_LETTERS."""
    dispositions: Counter[str] = field(default_factory=Counter)
    """The distributor's own count of record outcomes."""
    forwarded: Counter[str] = field(default_factory=Counter)
    invocations: int = 0
    failed_invocations: int = 0
    cold_starts: int = 0
    send_seconds: float = 0.0
    done_seconds: float | None = None
    """From the first send until everything was processed; None if the run timed out."""
    total_seconds: float = 0.0
    checks: list[Check] = field(default_factory=list)
    thread_failures: list[str] = field(default_factory=list)
    """Defects that stopped a background loop (pollers, workers, sampler): the run failed."""

    @property
    def passed(self) -> bool:
        checks_pass = bool(self.checks) and all(check.passed for check in self.checks)
        return checks_pass and not self.thread_failures

    def sent_of_kind(self, kind: str) -> list[SentMessage]:
        return [s for s in self.sent if s.planned.kind == kind]


def latencies(result: DemoResult) -> dict[str | None, float]:
    """Seconds from a request's first send to the end of its (first) processing."""
    first_sent: dict[str | None, float] = {}
    for sent in result.sent:
        if sent.planned.kind != "malformed":
            first_sent.setdefault(sent.planned.request_id, sent.sent_at)
    out: dict[str | None, float] = {}
    for completion in sorted(result.completions, key=lambda c: c.completed_at):
        if completion.request_id in first_sent and completion.request_id not in out:
            out[completion.request_id] = completion.completed_at - first_sent[completion.request_id]
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


def distribution(result: DemoResult) -> list[RegionRow]:
    processed = Counter(c.region for c in result.completions)
    total = sum(processed.values()) or 1
    capacity = sum(result.capacities.values()) or 1
    by_region: dict[str, list[float]] = {}
    latency = latencies(result)
    for completion in result.completions:
        if completion.request_id in latency:
            by_region.setdefault(completion.region, []).append(latency[completion.request_id])
    return [
        RegionRow(
            region=region,
            consumers=consumers,
            capacity_share=consumers / capacity,
            processed=processed[region],
            share=processed[region] / total,
            forwarded=result.forwarded[region],
            p50_latency=percentile(by_region[region], 50) if by_region.get(region) else None,
        )
        for region, consumers in result.capacities.items()
    ]


def dead_letter_reasons(result: DemoResult) -> list[tuple[str, int, list[str]]]:
    """(error_code, count, up to three distinct error messages), most frequent first."""
    counts = Counter(d.error_code or "(none)" for d in result.dead_letters)
    examples: dict[str, list[str]] = {}
    for dead in result.dead_letters:
        seen = examples.setdefault(dead.error_code or "(none)", [])
        if dead.error_message and dead.error_message not in seen and len(seen) < 3:
            seen.append(dead.error_message)
    return [(code, count, examples.get(code, [])) for code, count in counts.most_common()]


def duplicates_dropped(result: DemoResult) -> int:
    """Copies of requests that were sent but not processed (every retry, when nothing is lost)."""
    copies = len(result.sent_of_kind("valid")) + len(result.sent_of_kind("duplicate"))
    return copies - len(result.completions)


def _ids(values: Any, limit: int = 3) -> str:
    items = sorted(str(v) for v in values)
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def audit(result: DemoResult) -> list[Check]:
    """Exactly once: every valid request processed once by some worker, nothing else processed,
    every malformed message in the dead-letter queue with the expected reason, queues empty."""
    expected = {s.planned.request_id for s in result.sent_of_kind("valid")}
    times = Counter(c.request_id for c in result.completions)
    missing = expected - set(times)
    twice = {rid for rid, n in times.items() if n > 1}
    unknown = set(times) - expected
    malformed = {s.message_id: s.planned for s in result.sent_of_kind("malformed")}
    dead_by_origin = {d.origin_message_id: d for d in result.dead_letters}
    not_dead = [mid for mid in malformed if mid not in dead_by_origin]
    wrong_code = [
        f"{malformed[mid].label}: {dead_by_origin[mid].error_code}"
        for mid in malformed
        if mid in dead_by_origin and dead_by_origin[mid].error_code != malformed[mid].expected_error
    ]
    valid_ids = {s.message_id for s in result.sent if s.planned.kind != "malformed"}
    valid_dead = [d for d in result.dead_letters if d.origin_message_id in valid_ids]
    unexplained = [
        d
        for d in result.dead_letters
        if d.origin_message_id not in malformed and d.origin_message_id not in valid_ids
    ]
    leftovers = {
        name: depth.total
        for name, depth in result.final_depths.items()
        if name != DEAD_LETTERS and depth.total
    }
    dead_extra = len(result.dead_letters) - len(malformed)
    return [
        Check(
            "every valid request processed (none lost)",
            not missing,
            f"{len(expected) - len(missing)}/{len(expected)}"
            + (f"; missing {_ids(missing)}" if missing else ""),
        ),
        Check(
            "no request processed twice",
            not twice,
            f"processed twice: {_ids(twice)}" if twice else f"{len(result.completions)} processed",
        ),
        Check(
            "nothing processed that was not sent as a valid request",
            not unknown,
            _ids(unknown) if unknown else "ok",
        ),
        Check(
            "every malformed message in the dead-letter queue with its reason",
            not not_dead and not wrong_code,
            f"{len(malformed) - len(not_dead)}/{len(malformed)}"
            + (f"; wrong error_code: {'; '.join(wrong_code[:3])}" if wrong_code else ""),
        ),
        Check(
            "no valid request or stray message in the dead-letter queue",
            not valid_dead and not unexplained and dead_extra <= 0,
            f"{len(valid_dead)} valid, {len(unexplained)} of unknown origin"
            if valid_dead or unexplained
            else "ok",
        ),
        Check(
            "every queue drained",
            not leftovers,
            ", ".join(f"{k}: {v}" for k, v in leftovers.items()) if leftovers else "ok",
        ),
    ]
