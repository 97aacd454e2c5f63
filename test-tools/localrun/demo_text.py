"""The demo's printed summary: what happened, in figures, then the audit."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from localrun.models import PERMANENT_CODE, RETRYABLE_CODE
from localrun.summary import (
    DemoResult,
    batch_sizes,
    dead_letter_reasons,
    distribution,
    duplicates_dropped,
    high_priority_requests,
    latency_by_priority,
    latency_percentiles,
    rescued,
    results_by_place,
    stranded_first_seen,
)
from orchestrator.core.record import RequestStatus


def _sent_line(result: DemoResult) -> str:
    valid = result.sent_of_kind("valid")
    injected = Counter(s.planned.simulate for s in valid if s.planned.simulate)
    notes = []
    if injected:
        notes += [f"{injected['retryable']} fail once", f"{injected['permanent']} fail for good"]
    high = sum(1 for s in valid if s.planned.priority == "high")
    if high:
        notes.append(f"{high} high-priority")
    extra = f" ({', '.join(notes)})" if notes else ""
    return (
        f"Sent {len(result.sent)} messages: {len(valid)} requests{extra}, "
        f"{len(result.sent_of_kind('duplicate'))} retries, "
        f"{len(result.sent_of_kind('malformed'))} malformed"
    )


def _distribution_lines(result: DemoResult) -> list[str]:
    lines = ["Distribution (requests run to success, by the region of the worker)"]
    header = ("region", "GPUs", "capacity", "succeeded", "share", "mean batch", "p50 latency")
    lines.append("  {:<11}{:>5}{:>10}{:>11}{:>8}{:>12}{:>13}".format(*header))
    rows = distribution(result)
    for row in rows:
        p50 = f"{row.p50_latency:.2f} s" if row.p50_latency is not None else "-"
        batch = f"{row.mean_batch:.1f}" if row.mean_batch is not None else "-"
        stopped = result.stopped.get(row.region)
        note = f"  (workers stopped at {stopped:g} s)" if stopped is not None else ""
        lines.append(
            f"  {row.region:<11}{row.consumers:>5}{row.capacity_share:>10.1%}"
            f"{row.succeeded:>11}{row.share:>8.1%}{batch:>12}{p50:>13}{note}"
        )
    consumers, succeeded = sum(r.consumers for r in rows), sum(r.succeeded for r in rows)
    lines.append(f"  {'total':<11}{consumers:>5}{'':>10}{succeeded:>11}")
    return lines


def _batch_line(result: DemoResult) -> str:
    sizes = batch_sizes(result)
    calls = sum(sizes.values())
    if not calls:
        return "Worker batches: none"
    mean = sum(size * n for size, n in sizes.items()) / calls
    spread = " · ".join(f"{size}: {sizes[size]}" for size in sorted(sizes))
    return f"Worker batches: {calls} predict calls, mean size {mean:.1f} (size: calls {spread})"


def _priority_lines(result: DemoResult) -> list[str]:
    """High-priority latency beside standard, and where the high-priority requests went."""
    parts = []
    for lane, (count, pct) in latency_by_priority(result).items():
        figures = " · ".join(f"{k} {v:.2f} s" for k, v in pct.items()) or "-"
        parts.append(f"{lane} {figures} ({count})")
    high = high_priority_requests(result)
    succeeded = sum(
        1
        for rid in high
        if rid in result.records and result.records[rid].status is RequestStatus.SUCCEEDED
    )
    queued = len(high & result.forwarded_high)
    strays = len(result.forwarded_high - high)
    return [
        "Latency by priority: " + " | ".join(parts),
        f"High priority: {len(high)} requests, {queued} forwarded to a high-priority queue, "
        f"{succeeded} succeeded"
        + (f"; {strays} other requests in the high-priority queues" if strays else ""),
    ]


def _failures_line(result: DemoResult) -> str:
    records = result.records
    injected = result.planned_requests()
    retried = [rid for rid, s in injected.items() if s.planned.simulate == "retryable"]
    failed = [rid for rid, s in injected.items() if s.planned.simulate == "permanent"]
    recovered = [
        rid for rid in retried if rid in records and records[rid].status is RequestStatus.SUCCEEDED
    ]
    attempts = Counter(records[rid].attempt for rid in recovered)
    dead = sum(len(letters) for letters in result.region_dead_letters.values())
    on = ", ".join(f"attempt {a}: {n}" for a, n in sorted(attempts.items())) or "-"
    return (
        f"Injected failures: {len(recovered)}/{len(retried)} {RETRYABLE_CODE} succeeded on "
        f"retry ({on}); {len(failed)} {PERMANENT_CODE} FAILED, {dead} in the region DLQs"
    )


def _rescue_line(result: DemoResult) -> str:
    runs = len(result.rescue_runs)
    every = result.settings.get("rescue_every", 0)
    if not runs:
        return "Rescue: off" if not every else "Rescue: no run"
    head = f"Rescue: {runs} runs, every {every:g} s"
    moved, taken = rescued(result)
    stranded = stranded_first_seen(result)
    if not stranded:
        return head + "; nothing stranded"
    parts = []
    for region, (at, reason) in stranded.items():
        targets = {t: n for (s, t), n in moved.items() if s == region}
        where = [f"{t} {n}" for t, n in sorted(targets.items())]
        claimed = taken[region] - sum(targets.values())
        if claimed:
            where.append(f"{claimed} superseded: a worker had claimed their record")
        parts.append(
            f"{region} stranded ({reason}) at {at:.1f} s, {taken[region]} messages moved"
            + (f" ({', '.join(where)})" if where else "")
        )
    return head + "; " + "; ".join(parts)


def _workers_line(result: DemoResult) -> str:
    exits = Counter(result.worker_exits.values())
    clean = exits.get(0, 0)
    codes = ", ".join(f"status {c}: {n}" for c, n in exits.items() if c != 0)
    return (
        f"Workers: {len(result.worker_exits)} processes, {clean} drained on SIGTERM and exited 0"
        + (f"; {codes}" if codes else "")
    )


def format_summary(result: DemoResult, report: Path | None) -> str:
    lines: list[str] = [""]
    add = lines.append
    add(_sent_line(result))
    done = (
        f"everything done {result.done_seconds:.1f} s after the first send"
        if result.done_seconds is not None
        else "NOT everything was done (timed out or lost)"
    )
    add(done[0].upper() + done[1:])
    add("")
    lines.extend(_distribution_lines(result))
    add("")
    add(_batch_line(result))
    pct = latency_percentiles(result)
    if pct:
        add(
            "End-to-end latency (send -> final record): "
            + " · ".join(f"{k} {v:.2f} s" for k, v in pct.items())
        )
        lines.extend(_priority_lines(result))
    places = results_by_place(result)
    add(f"Results: {places['inline']} inline in the record, {places['s3']} in S3 (over 32 KiB)")
    statuses = Counter(n.status for n in result.notifications)
    add(
        f"Notifications: {len(result.notifications)} through SNS to the subscribed queue ("
        + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items()))
        + ")"
    )
    add(_failures_line(result))
    add(_rescue_line(result))
    add(
        f"Duplicates dropped: {duplicates_dropped(result)} of "
        f"{len(result.sent_of_kind('duplicate'))} retries (the distributor reported "
        f"{result.dispositions.get('duplicate', 0)} duplicate records)"
    )
    add(f"Dead-letter queue: {len(result.dead_letters)} messages")
    for code, count, examples in dead_letter_reasons(result.dead_letters):
        add(f"  {code:<15}{count:>4}   e.g. {examples[0] if examples else ''}")
        for example in examples[1:]:
            add(f"  {'':<19}        {example}")
    add(
        f"Distributor: {result.invocations} invocations ({result.failed_invocations} failed), "
        f"{result.cold_starts} cold starts; records "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.dispositions.items()))
    )
    add(_workers_line(result))
    add("")
    add("Exactly-once audit")
    for check in result.checks:
        add(f"  {'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    for failure in result.thread_failures:
        add(f"  FAIL  a background task stopped ({failure}); see the logs")
    add("")
    if report is not None:
        add(f"Report: {report}")
    logs = result.settings.get("logs")
    if logs:
        add("Logs: " + ", ".join(_shown(str(path)) for path in logs))
    verdict = "PASSED" if result.passed else "FAILED"
    add(f"Demo took {result.total_seconds:.1f} s; audit {verdict}")
    return "\n".join(lines)


def _shown(path: str) -> str:
    try:
        shown = str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
    return shown + ("/" if path.endswith("/") else "")
