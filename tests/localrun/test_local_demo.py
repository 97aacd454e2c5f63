"""The demo: `orchestrator demo` end to end (run once per session, as `make demo` runs it),
and its traffic, audit, summary and report on a result built here (no stack, fast)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from localrun.audit import audit
from localrun.demo import parse_args
from localrun.demo_text import format_summary
from localrun.depths import DepthSample
from localrun.evidence import Notification, ResultRead
from localrun.models import OK, PERMANENT_CODE, RETRYABLE_CODE, Execution, PredictCall
from localrun.report import write_report
from localrun.rescue_timer import RescueRun
from localrun.summary import DEAD_LETTERS, HIGH_PRIORITY, MASTER, Check, DemoResult
from localrun.traffic import SentMessage, plan_traffic
from orchestrator.cli.malformed import BY_KIND
from orchestrator.core.dead_letter import DeadLetter
from orchestrator.core.record import RequestRecord, RequestStatus
from orchestrator.core.sqs import QueueDepth
from orchestrator.core.timefmt import iso_utc, parse_iso

REGIONS = ("us-east-1", "us-west-2", "us-west-1")

# -- the command, once ------------------------------------------------------------------------


def audit_lines(stdout: str) -> dict[str, str]:
    """The audit's lines by check name: ``{"no request processed twice": "PASS ..."}``."""
    found = re.findall(r"^  (PASS|FAIL)  ([^:]+): (.*)$", stdout, flags=re.MULTILINE)
    return {name: f"{verdict} {detail}" for verdict, name, detail in found}


@pytest.mark.slow
def test_the_demo_command_passes_its_audit(demo_run: Any) -> None:
    assert demo_run.returncode == 0, demo_run.stdout + demo_run.stderr
    out = demo_run.stdout
    assert (
        "Sent 40 messages: 28 requests (2 fail once, 1 fail for good, 7 high-priority), "
        "6 retries, 6 malformed" in out
    )
    checks = audit_lines(out)
    assert checks["every valid request SUCCEEDED (none lost)"] == "PASS 27/27"
    assert checks["records name the worker, attempt and fencing token"] == ("PASS 28 final records")
    assert checks["every result readable (inline or from S3)"].startswith("PASS ")
    assert checks[
        "injected permanent failures FAILED, with the reason in record and region DLQ"
    ] == ("PASS 1/1")
    assert checks["one notification per finished request"].startswith(
        "PASS 28 for 28 finished (FAILED 1, SUCCEEDED 27)"
    )
    assert checks["no request run twice"].startswith(
        "PASS 30 runs of 28 requests (2 failed once as injected"
    )
    assert checks["every malformed message in the dead-letter queue with its reason"] == "PASS 6/6"
    assert checks["every queue drained"] == "PASS ok"
    assert all(line.startswith("PASS") for line in checks.values()), checks
    assert len(checks) == 10
    assert "Duplicates dropped: 6 of 6 retries (the distributor reported 6 duplicate" in out
    assert "Dead-letter queue: 6 messages" in out
    assert re.search(r"^Worker batches: \d+ predict calls, mean size \d", out, re.MULTILINE)
    assert re.search(r"^Results: \d+ inline in the record, \d+ in S3", out, re.MULTILINE)
    assert "Injected failures: 2/2 SIMULATED_GPU_OOM succeeded on retry" in out
    assert re.search(r"^Rescue: \d+ runs, every 2 s; nothing stranded$", out, re.MULTILINE)
    assert "Workers: 7 processes, 7 drained on SIGTERM and exited 0" in out
    # High-priority requests went to the high-priority queues, were served from there
    # (every queue drained, none lost), and their latency is shown beside standard.
    assert "a standard and a high-priority queue per region" in out
    served = re.search(
        r"^High priority: (\d+) requests, (\d+) forwarded to a high-priority queue, "
        r"(\d+) succeeded$",
        out,
        re.MULTILINE,
    )
    assert served, out
    high, queued, succeeded = (int(n) for n in served.groups())
    assert high == round(28 * 0.25) == queued and succeeded >= high - 1  # 1 permanent at most
    assert re.search(
        rf"^Latency by priority: high p50 [\d.]+ s · p90 [\d.]+ s · p99 [\d.]+ s \({high}\) \| "
        rf"standard p50 [\d.]+ s · p90 [\d.]+ s · p99 [\d.]+ s \({28 - high}\)$",
        out,
        re.MULTILINE,
    )
    assert re.search(r"^ +[\d.]+s  done .*us-west-2 high \d+\+\d+", out, re.MULTILINE)
    for region in REGIONS:
        assert re.search(rf"^  {region}\s+\d", out, flags=re.MULTILINE), region
    assert "audit PASSED" in out


@pytest.mark.slow
def test_the_demo_command_writes_its_report_and_keeps_the_console_clean(
    demo_run: Any,
) -> None:
    assert f"Report: {demo_run.report}" in demo_run.stdout
    html = demo_run.report.read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "PASS" in html
    assert "Worker batch sizes" in html
    assert "us-west-1 high (dotted)" in html and "<th>priority</th>" in html
    log = demo_run.report.with_name("demo-distributor.log")
    # The function's own output (Powertools logs; EMF metrics, off in tests) goes to its log,
    # as Lambda sends it to CloudWatch, never to the console.
    assert '"message":"batch distributed"' in log.read_text()
    assert "batch distributed" not in demo_run.stdout + demo_run.stderr
    assert '"_aws"' not in demo_run.stdout
    rescue_log = demo_run.report.with_name("demo-rescue.log").read_text()
    assert '"message":"rescue run"' in rescue_log and "rescue run" not in log.read_text()
    workers = demo_run.report.with_name("demo-workers")
    assert len(list(workers.glob("*.log"))) == 7  # one JSON log per worker process
    assert '"message": "worker started"' in (workers / "us-west-1-w1.log").read_text()
    assert not demo_run.stack_file.exists()  # advertised while running, then removed


# -- traffic ----------------------------------------------------------------------------------


def test_traffic_uses_the_malformed_catalogue_and_the_one_timestamp_format() -> None:
    plan = plan_traffic(count=40, duplicates=4, malformed=6, seed=1, run_id="t1")
    assert Counter(m.kind for m in plan) == {"valid": 30, "duplicate": 4, "malformed": 6}
    for message in plan:
        if message.kind == "malformed":
            case = BY_KIND[message.label]
            assert message.expected_error == case.error_code.value
        else:
            timestamp = re.search(r'"timestamp":"([^"]+)"', message.body)
            assert timestamp and timestamp.group(1).endswith("Z"), message.body
            assert parse_iso(timestamp.group(1)) is not None
    labels = [m.label for m in plan if m.kind == "malformed"]
    assert len(set(labels)) == 6  # six different mistakes, not one six times


def test_traffic_has_its_share_of_high_priority_requests() -> None:
    plan = plan_traffic(count=120, duplicates=10, malformed=10, seed=4, run_id="t4")
    requests = [m for m in plan if m.kind != "malformed"]
    for message in requests:
        assert json.loads(message.body)["priority"] == message.priority
    valid = [m for m in requests if m.kind == "valid"]
    assert sum(1 for m in valid if m.priority == "high") == 10  # 10% of the 100
    assert {m.priority for m in valid} == {"high", "normal", "low"}
    firsts = {m.request_id: m.priority for m in valid}
    assert all(m.priority == firsts[m.request_id] for m in requests)  # a retry keeps it
    none = plan_traffic(count=120, duplicates=10, malformed=10, seed=4, run_id="t4", high_share=0)
    assert not any(m.priority == "high" for m in none)
    # The share does not change the rest of the plan (same models, same injected failures).
    assert [m.simulate for m in none] == [m.simulate for m in plan]


# -- the audit and the summary on a result built here ----------------------------------------


def _record(
    rid: str, status: RequestStatus, worker: str, attempt: int, **extra: Any
) -> RequestRecord:
    return RequestRecord(
        request_id=rid,
        status=status,
        message_id=f"m-{rid}",
        payload_hash="h",
        region=worker.rsplit("-w", 1)[0],
        priority="normal",
        model_name="m",
        forwarded_at=iso_utc(1000.0),
        lease_expires_at=0,
        expires_at=0,
        worker_id=worker,
        attempt=attempt,
        fencing_token=attempt,
        started_at=iso_utc(1001.0),
        finished_at=iso_utc(1002.0 + attempt),
        **extra,
    )


def passing_result() -> DemoResult:
    """A run where everything went right: 9 requests (one fails once, one for good), 2
    retries, 3 malformed."""
    plan = plan_traffic(
        count=14, duplicates=2, malformed=3, seed=2, run_id="t2", retryable=1, permanent=1
    )
    sent = [SentMessage(p, f"m-{i}", 1000.0 + i) for i, p in enumerate(plan)]
    valid = [s for s in sent if s.planned.kind == "valid"]
    records: dict[str, RequestRecord] = {}
    executions: list[Execution] = []
    results: dict[str, ResultRead] = {}
    notifications: list[Notification] = []
    region_letters: dict[str, list[DeadLetter]] = {r: [] for r in REGIONS}
    for i, s in enumerate(valid):
        rid = str(s.planned.request_id)
        worker = f"{REGIONS[i % 3]}-w1"
        region = REGIONS[i % 3]
        at = s.sent_at + 0.5

        def run(
            attempt: int,
            outcome: str,
            worker: str = worker,
            region: str = region,
            rid: str = rid,
            at: float = at,
        ) -> None:
            executions.append(
                Execution(
                    rid, attempt, worker, region, at + attempt, at + attempt + 0.2, outcome, 1
                )
            )

        if s.planned.simulate == "permanent":
            run(1, PERMANENT_CODE)
            records[rid] = _record(
                rid, RequestStatus.FAILED, worker, 1, error_code=PERMANENT_CODE, error_message="bad"
            )
            region_letters[region].append(
                DeadLetter(s.message_id, s.planned.body, PERMANENT_CODE, "bad", rid)
            )
        else:
            attempt = 1
            if s.planned.simulate == "retryable":
                run(1, RETRYABLE_CODE)
                attempt = 2
            run(attempt, OK)
            records[rid] = _record(
                rid,
                RequestStatus.SUCCEEDED,
                worker,
                attempt,
                result=json.dumps({"request_id": rid}),
            )
            results[rid] = ResultRead("inline", {"request_id": rid})
        notifications.append(Notification(rid, records[rid].status.value, {}))
    dead = [
        DeadLetter(s.message_id, s.planned.body, s.planned.expected_error or "", "why: field")
        for s in sent
        if s.planned.kind == "malformed"
    ]
    depths = {name: QueueDepth(0, 0) for name in (*REGIONS, MASTER)}
    depths.update({f"{region} high": QueueDepth(0, 0) for region in REGIONS})
    depths[DEAD_LETTERS] = QueueDepth(len(dead), 0)
    result = DemoResult(
        settings={
            "rate": 40,
            "seed": 2,
            "function": "fn",
            "send_started_at": 0.0,
            "rescue_every": 2,
        },
        capacities={"us-east-1": 2, "us-west-2": 1, "us-west-1": 1},
        sent=sent,
        records=records,
        executions=executions,
        calls=[PredictCall(e.worker, e.region, e.started, e.ended, 1) for e in executions],
        results=results,
        notifications=notifications,
        dead_letters=dead,
        region_dead_letters=region_letters,
        samples=[DepthSample(0.0, depths), DepthSample(1.0, depths)],
        final_depths=depths,
        dispositions=Counter(forwarded=len(valid), duplicate=2, dead_lettered=len(dead)),
        forwarded=Counter(e.region for e in executions if e.succeeded),
        forwarded_high={
            str(s.planned.request_id) for s in valid if s.planned.priority == HIGH_PRIORITY
        },
        send_seconds=0.5,
        done_seconds=3.0,
        total_seconds=4.0,
    )
    result.checks = audit(result)
    return result


def verdicts(checks: list[Check]) -> dict[str, bool]:
    return {check.name: check.passed for check in checks}


def failed_checks(result: DemoResult) -> list[str]:
    return [name for name, ok in verdicts(audit(result)).items() if not ok]


def planned(result: DemoResult, simulate: str | None) -> str:
    return next(
        rid for rid, s in result.planned_requests().items() if s.planned.simulate == simulate
    )


def test_a_complete_run_passes() -> None:
    result = passing_result()
    assert result.passed, [c for c in result.checks if not c.passed]


def test_the_audit_catches_a_lost_request() -> None:
    result = passing_result()
    rid = planned(result, None)
    records = {k: v for k, v in result.records.items() if k != rid}
    assert "every valid request SUCCEEDED (none lost)" in failed_checks(
        replace(result, records=records)
    )
    running = {**result.records, rid: replace(result.records[rid], status=RequestStatus.RUNNING)}
    check = audit(replace(result, records=running))[0]
    assert not check.passed and f"{rid} RUNNING" in check.detail


def test_the_audit_catches_a_request_run_twice() -> None:
    result = passing_result()
    again = next(e for e in result.executions if e.succeeded)
    twice = replace(result, executions=[*result.executions, replace(again, worker="us-west-2-w9")])
    assert failed_checks(twice) == ["no request run twice"]


def test_the_audit_catches_a_record_that_does_not_name_its_run() -> None:
    result = passing_result()
    rid = planned(result, None)
    name = "records name the worker, attempt and fencing token"
    for change in (
        {"worker_id": "us-west-1-w7"},
        {"worker_id": None},
        {"fencing_token": 0},
    ):
        records = {**result.records, rid: replace(result.records[rid], **change)}
        assert failed_checks(replace(result, records=records)) == [name], change
    retried = planned(result, "retryable")
    runs = [
        e
        for e in result.executions
        if not (e.request_id == retried and e.outcome == RETRYABLE_CODE)
    ]
    runs = [replace(e, attempt=1) if e.request_id == retried else e for e in runs]
    records = {**result.records, retried: replace(result.records[retried], attempt=1)}
    assert name in failed_checks(replace(result, records=records, executions=runs))


def test_the_audit_catches_an_unreadable_result() -> None:
    result = passing_result()
    rid = planned(result, None)
    for read in (
        ResultRead("s3", problem="s3://b/k: NoSuchKey"),
        ResultRead("inline", {"request_id": "other"}),
    ):
        broken = replace(result, results={**result.results, rid: read})
        assert failed_checks(broken) == ["every result readable (inline or from S3)"]


def test_the_audit_catches_a_permanent_failure_without_its_reason_or_dead_letter() -> None:
    result = passing_result()
    rid = planned(result, "permanent")
    name = "injected permanent failures FAILED, with the reason in record and region DLQ"
    no_letter = replace(result, region_dead_letters={r: [] for r in REGIONS})
    assert name in failed_checks(no_letter)
    records = {**result.records, rid: replace(result.records[rid], error_code=None)}
    assert name in failed_checks(replace(result, records=records))


def test_the_audit_catches_a_missing_or_repeated_notification() -> None:
    result = passing_result()
    name = "one notification per finished request"
    assert failed_checks(replace(result, notifications=result.notifications[1:])) == [name]
    again = [*result.notifications, result.notifications[0]]
    check = next(c for c in audit(replace(result, notifications=again)) if c.name == name)
    assert not check.passed and "twice" in check.detail


def test_the_audit_catches_a_missing_or_wrongly_coded_dead_letter() -> None:
    result = passing_result()
    missing = replace(result, dead_letters=result.dead_letters[1:])
    assert not verdicts(audit(missing))[
        "every malformed message in the dead-letter queue with its reason"
    ]
    wrong = replace(
        result,
        dead_letters=[
            replace(result.dead_letters[0], error_code="OTHER"),
            *result.dead_letters[1:],
        ],
    )
    check = next(c for c in audit(wrong) if c.name.startswith("every malformed"))
    assert not check.passed and "wrong error_code" in check.detail


def test_the_audit_catches_a_valid_request_or_a_stray_message_in_the_dead_letter_queues() -> None:
    result = passing_result()
    name = "no valid request or stray message in the dead-letter queues"
    valid = result.sent_of_kind("valid")[0]
    letter = DeadLetter(valid.message_id, valid.planned.body, "INVALID_FIELD", "x")
    assert not verdicts(audit(replace(result, dead_letters=[*result.dead_letters, letter])))[name]
    stray = DeadLetter("not-sent", "{}", "", "")
    check = next(
        c
        for c in audit(replace(result, dead_letters=[*result.dead_letters, stray]))
        if c.name == name
    )
    assert not check.passed and "1 of unknown origin" in check.detail
    ok_rid = planned(result, None)
    regional = {
        **result.region_dead_letters,
        "us-west-2": [DeadLetter("m", "{}", "X", "y", ok_rid)],
    }
    assert name in failed_checks(replace(result, region_dead_letters=regional))


def test_the_audit_catches_an_undrained_queue() -> None:
    result = passing_result()
    depths = {**result.final_depths, "us-west-2": QueueDepth(0, 1)}
    check = next(c for c in audit(replace(result, final_depths=depths)) if "drained" in c.name)
    assert not check.passed and check.detail == "us-west-2: 1"


def test_a_stopped_background_task_fails_the_run() -> None:
    result = passing_result()
    broken = replace(result, thread_failures=["pollers: TypeError: boom"])
    assert not broken.passed
    summary = format_summary(broken, None)
    assert "a background task stopped (pollers: TypeError: boom)" in summary
    assert "audit FAILED" in summary


def test_summary_and_report(tmp_path: Path) -> None:
    result = passing_result()
    summary = format_summary(result, tmp_path / "demo.html")
    assert (
        "Sent 14 messages: 9 requests (1 fail once, 1 fail for good, 1 high-priority), "
        "2 retries, 3 malformed" in summary
    )
    # High-priority latency beside standard, p50/p90/p99 each, with how many requests.
    assert re.search(
        r"^Latency by priority: high p50 \d+\.\d\d s · p90 \d+\.\d\d s · p99 \d+\.\d\d s \(1\) \| "
        r"standard p50 \d+\.\d\d s · p90 \d+\.\d\d s · p99 \d+\.\d\d s \(8\)$",
        summary,
        re.MULTILINE,
    ), summary
    assert "High priority: 1 requests, 1 forwarded to a high-priority queue, 1 succeeded" in summary
    assert "Dead-letter queue: 3 messages" in summary
    assert "Duplicates dropped: 2 of 2 retries" in summary
    assert re.search(r"p50 \d+\.\d\d s · p90", summary)
    assert "Worker batches: 10 predict calls, mean size 1.0 (size: calls 1: 10)" in summary
    assert "Results: 8 inline in the record, 0 in S3" in summary
    assert "Notifications: 9 through SNS to the subscribed queue (FAILED 1, SUCCEEDED 8)" in summary
    assert "Injected failures: 1/1 SIMULATED_GPU_OOM succeeded on retry (attempt 2: 1)" in summary
    assert "audit PASSED" in summary
    html = write_report(result, tmp_path / "demo.html").read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html
    assert "us-east-1 high (dotted)" in html  # both queues of each region over time
    assert re.search(
        r"<tr><td>high</td><td class='n'>1</td>(<td class='n'>\d+\.\d\d s</td>){3}", html
    )
    # A request the distributor put in a high-priority queue that was not one is called out.
    stray = next(r for r in result.planned_requests() if r not in result.forwarded_high)
    mixed = replace(result, forwarded_high={*result.forwarded_high, stray})
    assert "; 1 other requests in the high-priority queues" in format_summary(mixed, None)


def test_the_summary_shows_what_the_rescue_moved() -> None:
    report = {
        "stranded": {"us-east-1": "no-consumers"},
        "regions": {
            "us-east-1": {
                "moved": {"us-west-2": 5, "us-west-1": 2},
                "superseded": 3,
                "unrecorded": 0,
            }
        },
    }
    result = replace(
        passing_result(),
        rescue_runs=[RescueRun(1.0, {"stranded": {}, "regions": {}}), RescueRun(3.5, report)],
        stopped={"us-east-1": 1.5},
    )
    summary = format_summary(result, None)
    assert (
        "Rescue: 2 runs, every 2 s; us-east-1 stranded (no-consumers) at 3.5 s, 10 messages moved "
        "(us-west-1 2, us-west-2 5, 3 superseded: a worker had claimed their record)"
    ) in summary
    # The function reports each lane; a region's two queues are one region here.
    lanes = {
        "stranded": {"us-east-1": "no-consumers", "us-east-1:high": "no-consumers"},
        "regions": {
            "us-east-1": {"moved": {"us-west-2": 4}, "superseded": 1},
            "us-east-1:high": {"moved": {"us-west-2:high": 1, "us-west-1:high": 2}},
        },
    }
    run = RescueRun(2.0, lanes)
    assert run.stranded == {"us-east-1": "no-consumers"}
    assert run.moved() == {("us-east-1", "us-west-2"): 5, ("us-east-1", "us-west-1"): 2}
    assert run.rescued() == {"us-east-1": 8}
    assert re.search(r"^  us-east-1 .*\(workers stopped at 1.5 s\)$", summary, re.MULTILINE)


def test_flags() -> None:
    options = parse_args(["--count", "50", "--duplicates", "5", "--malformed", "4", "--seed", "9"])
    assert (options.count, options.duplicates, options.malformed, options.seed) == (50, 5, 4, 9)
    assert options.report.name == "demo.html"
    assert options.stop is None
    assert parse_args(["--stop", "us-west-2@2.5"]).stop == ("us-west-2", 2.5)
    for bad in (
        ["--count", "5", "--duplicates", "5"],
        ["--stop", "mars-1@2"],
        ["--retryable", "999"],
    ):
        with pytest.raises(SystemExit):
            parse_args(bad)
