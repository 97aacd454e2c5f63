"""The exactly-once audit of a demo run, read from what the run left behind.

- The **request records** (`RequestRecord`): every valid request SUCCEEDED, each final record
  names the worker and attempt that ran it under a fencing token at least its attempt, and
  its result is readable (inline, or from S3 through ``result_location``).
- The **injected failures**: a permanent one ends FAILED with its reason, in the record and
  in its region's dead-letter queue; a retryable one succeeds on a later attempt.
- The **notifications**: one per finished request, with its status, from the queue
  subscribed to the callback topic.
- The **executions**, from the simulated model's own logs (the records cannot show a run
  that should not have happened): no request ran to completion twice, none ran that was not
  sent.
- The **queues**: every malformed message in the master dead-letter queue with the expected
  `error_code`, no valid request there, and every queue drained.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from localrun.models import OK, PERMANENT, PERMANENT_CODE, RETRYABLE, RETRYABLE_CODE
from localrun.summary import DEAD_LETTERS, NOTIFICATIONS, Check, DemoResult, results_by_place
from orchestrator.core.record import RequestStatus


def _ids(values: Iterable[object], limit: int = 3) -> str:
    items = sorted(str(v) for v in values)
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def audit(result: DemoResult) -> list[Check]:
    return [
        _all_succeeded(result),
        _records_consistent(result),
        _results_readable(result),
        _permanent_failures(result),
        _notifications(result),
        _no_run_twice(result),
        _nothing_unknown(result),
        _malformed_dead_lettered(result),
        _dead_letters_expected(result),
        _drained(result),
    ]


def _simulated(result: DemoResult, kind: str) -> set[str]:
    return {rid for rid, s in result.planned_requests().items() if s.planned.simulate == kind}


def _all_succeeded(result: DemoResult) -> Check:
    expected = set(result.planned_requests()) - _simulated(result, PERMANENT)
    records = result.records
    missing = {
        rid: (records[rid].status.value if rid in records else "no record")
        for rid in expected
        if rid not in records or records[rid].status is not RequestStatus.SUCCEEDED
    }
    detail = f"{len(expected) - len(missing)}/{len(expected)}"
    if missing:
        detail += "; not: " + _ids(f"{rid} {status}" for rid, status in missing.items())
    return Check("every valid request SUCCEEDED (none lost)", not missing, detail)


def _records_consistent(result: DemoResult) -> Check:
    winners: dict[str, set[tuple[str, int]]] = {}
    for e in result.executions:
        if e.succeeded:
            winners.setdefault(e.request_id, set()).add((e.worker, e.attempt))
    retried = _simulated(result, RETRYABLE)
    problems: list[str] = []
    final = 0
    for rid in result.planned_requests():
        record = result.records.get(rid)
        if record is None or not record.status.is_final:
            continue  # counted as lost above
        final += 1
        if not record.worker_id:
            problems.append(f"{rid}: no worker_id")
        elif not 1 <= record.attempt <= record.fencing_token:
            problems.append(f"{rid}: attempt {record.attempt}, token {record.fencing_token}")
        elif record.status is RequestStatus.SUCCEEDED:
            runs = winners.get(rid, set())
            if (record.worker_id, record.attempt) not in runs:
                ran = ", ".join(f"{w} attempt {a}" for w, a in sorted(runs)) or "no run"
                problems.append(
                    f"{rid}: record says {record.worker_id} attempt {record.attempt}, "
                    f"succeeded: {ran}"
                )
            elif rid in retried and record.attempt < 2:
                problems.append(f"{rid}: injected retry, but succeeded on attempt 1")
    detail = f"{final} final records" if not problems else "; ".join(problems[:3])
    return Check("records name the worker, attempt and fencing token", not problems, detail)


def _results_readable(result: DemoResult) -> Check:
    problems = []
    for rid, record in result.records.items():
        if record.status is not RequestStatus.SUCCEEDED or rid not in result.planned_requests():
            continue
        read = result.results.get(rid)
        if read is None or read.problem is not None:
            problems.append(f"{rid}: {read.problem if read else 'not read'}")
        elif not isinstance(read.value, dict) or read.value.get("request_id") != rid:
            problems.append(f"{rid}: result is not this request's")
    places = results_by_place(result)
    detail = f"{places['inline']} inline, {places['s3']} from S3"
    if problems:
        detail = "; ".join(problems[:3])
    return Check("every result readable (inline or from S3)", not problems, detail)


def _permanent_failures(result: DemoResult) -> Check:
    expected = _simulated(result, PERMANENT)
    letters = {d.request_id: d for letters in result.region_dead_letters.values() for d in letters}
    problems = []
    for rid in sorted(expected):
        record = result.records.get(rid)
        letter = letters.get(rid)
        if record is None or record.status is not RequestStatus.FAILED:
            problems.append(f"{rid}: {record.status.value if record else 'no record'}")
        elif record.error_code != PERMANENT_CODE or not record.error_message:
            problems.append(f"{rid}: record error {record.error_code}")
        elif letter is None or letter.error_code != PERMANENT_CODE or not letter.error_message:
            problems.append(f"{rid}: not in its region's DLQ with its reason")
    detail = f"{len(expected) - len(problems)}/{len(expected)}"
    if problems:
        detail += "; " + "; ".join(problems[:3])
    return Check(
        "injected permanent failures FAILED, with the reason in record and region DLQ",
        not problems,
        detail,
    )


def _notifications(result: DemoResult) -> Check:
    counts = Counter(n.request_id for n in result.notifications)
    statuses = {n.request_id: n.status for n in result.notifications}
    finished = {
        rid: r.status.value
        for rid, r in result.records.items()
        if r.status.is_final and rid in result.planned_requests()
    }
    missing = set(finished) - set(counts)
    twice = {rid for rid, n in counts.items() if n > 1}
    wrong = {rid for rid in finished if rid in statuses and statuses[rid] != finished[rid]}
    stray = set(counts) - set(finished)
    by_status = Counter(statuses[rid] for rid in counts if rid in statuses)
    detail = (
        f"{len(result.notifications)} for {len(finished)} finished ("
        + ", ".join(f"{status} {n}" for status, n in sorted(by_status.items()))
        + ")"
    )
    bad = missing or twice or wrong or stray
    if bad:
        detail = "; ".join(
            f"{label} {_ids(ids)}"
            for label, ids in (
                ("missing", missing),
                ("twice", twice),
                ("wrong status", wrong),
                ("not finished", stray),
            )
            if ids
        )
    return Check("one notification per finished request", not bad, detail)


def _no_run_twice(result: DemoResult) -> Check:
    done = Counter(e.request_id for e in result.executions if e.outcome in (OK, PERMANENT_CODE))
    retried = Counter(e.request_id for e in result.executions if e.outcome == RETRYABLE_CODE)
    injected = _simulated(result, RETRYABLE)
    interrupted = sum(1 for e in result.executions if e.outcome is None)
    twice = {rid for rid, n in done.items() if n > 1}
    unexpected_retries = {rid for rid, n in retried.items() if rid not in injected or n > 1}
    detail = (
        f"{len(result.executions)} runs of {len(done)} requests "
        f"({sum(retried.values())} failed once as injected"
        + (f", {interrupted} interrupted by a stop" if interrupted else "")
        + ")"
    )
    if twice or unexpected_retries:
        detail = "; ".join(
            f"{label}: {_ids(ids)}"
            for label, ids in (("ran twice", twice), ("retried unexpectedly", unexpected_retries))
            if ids
        )
    return Check("no request run twice", not twice and not unexpected_retries, detail)


def _nothing_unknown(result: DemoResult) -> Check:
    unknown = {e.request_id for e in result.executions} - set(result.planned_requests())
    return Check(
        "nothing run that was not sent as a valid request",
        not unknown,
        _ids(unknown) if unknown else "ok",
    )


def _malformed_dead_lettered(result: DemoResult) -> Check:
    malformed = {s.message_id: s.planned for s in result.sent_of_kind("malformed")}
    dead_by_origin = {d.origin_message_id: d for d in result.dead_letters}
    not_dead = [mid for mid in malformed if mid not in dead_by_origin]
    wrong_code = [
        f"{malformed[mid].label}: {dead_by_origin[mid].error_code}"
        for mid in malformed
        if mid in dead_by_origin and dead_by_origin[mid].error_code != malformed[mid].expected_error
    ]
    return Check(
        "every malformed message in the dead-letter queue with its reason",
        not not_dead and not wrong_code,
        f"{len(malformed) - len(not_dead)}/{len(malformed)}"
        + (f"; wrong error_code: {'; '.join(wrong_code[:3])}" if wrong_code else ""),
    )


def _dead_letters_expected(result: DemoResult) -> Check:
    malformed = {s.message_id for s in result.sent_of_kind("malformed")}
    valid_ids = {s.message_id for s in result.sent if s.planned.kind != "malformed"}
    valid_dead = [d for d in result.dead_letters if d.origin_message_id in valid_ids]
    unexplained = [
        d
        for d in result.dead_letters
        if d.origin_message_id not in malformed and d.origin_message_id not in valid_ids
    ]
    permanent = _simulated(result, PERMANENT)
    regional = [d for letters in result.region_dead_letters.values() for d in letters]
    region_extra = [
        d.request_id or d.origin_message_id for d in regional if d.request_id not in permanent
    ]
    region_twice = [rid for rid, n in Counter(d.request_id for d in regional).items() if n > 1]
    bad = valid_dead or unexplained or region_extra or region_twice
    detail = (
        f"master: {len(valid_dead)} valid, {len(unexplained)} of unknown origin; regions: "
        f"{len(region_extra)} unexpected, {len(region_twice)} twice"
        if bad
        else f"ok (regions: {len(regional)} injected failures)"
    )
    return Check("no valid request or stray message in the dead-letter queues", not bad, detail)


def _drained(result: DemoResult) -> Check:
    leftovers = {
        name: depth.total
        for name, depth in result.final_depths.items()
        if name not in (DEAD_LETTERS, NOTIFICATIONS) and not name.endswith(" DLQ") and depth.total
    }
    return Check(
        "every queue drained",
        not leftovers,
        ", ".join(f"{k}: {v}" for k, v in leftovers.items()) if leftovers else "ok",
    )
