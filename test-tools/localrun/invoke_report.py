"""What `orchestrator invoke` prints: the response, where each record went, and what a real
SQS event source would do with the records the function reported as failed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localrun.invoke import InvokeResult


def record_key(record: Mapping[str, Any], index: int) -> str:
    """The id the distributor reports a record under: its ``messageId``, or ``record-N`` (N
    its position in the event) when it has none, the distributor's own fallback. Lambda
    always sets a messageId; hand-written event files sometimes do not."""
    return str(record.get("messageId") or f"record-{index}")


def describe(outcome: Any) -> str:
    if outcome is None:
        return "no outcome reported (a defect: the distributor reports every record)"
    kind = outcome.disposition.value
    if kind == "forwarded":
        return f"{outcome.region} queue (attempt {outcome.attempt})"
    if kind == "dead_lettered":
        return f"dead-letter queue: {outcome.reason} - {outcome.detail or ''}".rstrip(" -")
    if kind == "duplicate":
        first = f" (forwarded to {outcome.region} before)" if outcome.region else ""
        return f"duplicate: already claimed, not forwarded{first}"
    cause = f"{outcome.reason or ''}: {outcome.detail or ''}".strip(" :")
    return f"FAILED ({cause}): in batchItemFailures, SQS would deliver it again"


def format_result(
    event: Mapping[str, Any],
    source: str,
    result: InvokeResult,
    clock: Callable[[], float] = time.time,
) -> str:
    target = result.target
    where = "a throwaway local stack" if target.throwaway else "the running local stack"
    lines = [
        f"Invoked the distributor with {source} ({len(event['Records'])} records) "
        f"on {where} at {target.stack.endpoint_url}",
    ]
    if target.note:
        lines.append(f"(a throwaway stack because {target.note})")
    lines.append(f"Duration {result.duration_ms:.1f} ms, request id {result.request_id}")
    if result.error:
        lines += [
            "",
            "The invocation failed. Lambda would report the whole batch as failed: every record"
            " stays in the master queue and SQS delivers it again after the visibility timeout.",
            result.error,
        ]
        return "\n".join(lines)
    lines += ["", "Response:", json.dumps(result.response, indent=2), "", "Where each record went:"]
    for index, record in enumerate(event["Records"]):
        key = record_key(record, index)
        label = key if record.get("messageId") else f"{key} (no messageId)"
        outcome = result.outcomes.get(key)
        request_id = getattr(outcome, "request_id", None) or "-"
        line = f"  {label:<38} {request_id[:40]:<41} {describe(outcome)}"
        settled_in_a_queue = outcome is not None and outcome.disposition.value in (
            "forwarded",
            "dead_lettered",
        )
        if target.throwaway and settled_in_a_queue:
            line += f"  [in queue: {result.seen.get(key, 'NOT FOUND')}]"
        lines.append(line)
    lines += _failure_notes(result, clock())
    return "\n".join(lines)


def _failure_notes(result: InvokeResult, now: float) -> list[str]:
    failed = [o for o in result.outcomes.values() if o.disposition.value == "failed"]
    if not failed:
        return []
    master = result.target.stack.spec.master_queue
    notes = [
        "",
        f"{len(failed)} of the records are in batchItemFailures. Behind a real SQS event source "
        "they would stay in the master queue and SQS would deliver each again after the "
        f"queue's visibility timeout ({master.visibility_timeout} s), moving it to the "
        f"dead-letter queue after {master.max_receive_count} receives. The invoker invokes "
        "once: nothing is delivered again here. Exit status 1.",
    ]
    if any(o.reason == "IN_PROGRESS" for o in failed):
        notes += ["", *_in_progress_note(result, now)]
    return notes


def _in_progress_note(result: InvokeResult, now: float) -> list[str]:
    lease = f"the function timeout plus a margin, {result.lease_seconds:g} s"
    if result.leases:
        last = max(result.leases.values())
        lease += (
            f"; it ends at {time.strftime('%H:%M:%S', time.localtime(last))}, "
            f"in {max(0, round(last - now))} s"
        )
    return [
        "IN_PROGRESS: an earlier invocation claimed these requests under the same messageId and "
        f"its claim lease has not run out ({lease}). To the distributor the same messageId "
        "again is SQS delivering the same message again while another invocation may still "
        "be handling it, so it asks for a later delivery instead of forwarding it twice.",
        "Invoked again after the lease, these records are forwarded again, possibly to other "
        "regions: the distributor then takes the earlier invocation for one that died before "
        "SQS deleted the message (the duplicate window in docs/architecture.md). A real queue "
        "never delivers a message again once it was deleted.",
        "To send the same requests as a client's retry (new message ids, shown as duplicates): "
        "orchestrator invoke --new-message-ids -e FILE",
    ]
