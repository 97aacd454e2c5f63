"""The demo: `orchestrator demo` end to end (run once per session, as `make demo` runs it),
and its traffic, audit, summary and report on a result built here (no stack, fast)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from localrun.demo import format_summary, parse_args
from localrun.depths import DepthSample
from localrun.report import write_report
from localrun.summary import DEAD_LETTERS, MASTER, Check, DemoResult, audit
from localrun.traffic import SentMessage, plan_traffic
from localrun.workers import Completion
from orchestrator.cli.malformed import BY_KIND
from orchestrator.core.dead_letter import DeadLetter
from orchestrator.core.sqs import QueueDepth
from orchestrator.core.timefmt import parse_iso

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
    assert "Sent 40 messages: 28 requests, 6 retries, 6 malformed" in out
    checks = audit_lines(out)
    assert checks["every valid request processed (none lost)"] == "PASS 28/28"
    assert checks["no request processed twice"] == "PASS 28 processed"
    assert checks["every malformed message in the dead-letter queue with its reason"] == "PASS 6/6"
    assert checks["every queue drained"] == "PASS ok"
    assert all(line.startswith("PASS") for line in checks.values()), checks
    assert len(checks) == 6
    assert "Duplicates dropped: 6 of 6 retries (the distributor reported 6 duplicate" in out
    assert "Dead-letter queue: 6 messages" in out
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
    log = demo_run.report.with_name("demo-distributor.log")
    # The function's own output (Powertools logs; EMF metrics, off in tests) goes to its log,
    # as Lambda sends it to CloudWatch, never to the console.
    assert '"message":"batch distributed"' in log.read_text()
    assert "batch distributed" not in demo_run.stdout + demo_run.stderr
    assert '"_aws"' not in demo_run.stdout
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


# -- the audit and the summary on a result built here ----------------------------------------


def passing_result() -> DemoResult:
    plan = plan_traffic(count=14, duplicates=2, malformed=3, seed=2, run_id="t2")
    sent = [SentMessage(p, f"m-{i}", 1000.0 + i) for i, p in enumerate(plan)]
    valid = [s for s in sent if s.planned.kind == "valid"]
    completions = [
        Completion(
            request_id=s.planned.request_id,
            region=REGIONS[i % 3],
            worker=f"{REGIONS[i % 3]}/gpu-0",
            message_id=f"r-{i}",
            origin_message_id=s.message_id,
            attempt=1,
            receive_count=1,
            received_at=s.sent_at + 0.5,
            completed_at=s.sent_at + 1.0 + i / 10,
        )
        for i, s in enumerate(valid)
    ]
    dead = [
        DeadLetter(s.message_id, s.planned.body, s.planned.expected_error or "", "why: field")
        for s in sent
        if s.planned.kind == "malformed"
    ]
    depths = {name: QueueDepth(0, 0) for name in (*REGIONS, MASTER)}
    depths[DEAD_LETTERS] = QueueDepth(len(dead), 0)
    result = DemoResult(
        settings={"rate": 40, "seed": 2, "function": "fn", "send_started_at": 0.0},
        capacities={"us-east-1": 2, "us-west-2": 1, "us-west-1": 1},
        sent=sent,
        completions=completions,
        dead_letters=dead,
        samples=[DepthSample(0.0, depths), DepthSample(1.0, depths)],
        final_depths=depths,
        dispositions=Counter(forwarded=len(valid), duplicate=2, dead_lettered=len(dead)),
        forwarded=Counter(c.region for c in completions),
        send_seconds=0.5,
        done_seconds=3.0,
        total_seconds=4.0,
    )
    result.checks = audit(result)
    return result


def verdicts(checks: list[Check]) -> dict[str, bool]:
    return {check.name: check.passed for check in checks}


def test_a_complete_run_passes() -> None:
    result = passing_result()
    assert result.passed, [c for c in result.checks if not c.passed]


def test_the_audit_catches_a_lost_request() -> None:
    result = passing_result()
    lost = replace(result, completions=result.completions[1:], checks=[])
    failed = [name for name, ok in verdicts(audit(lost)).items() if not ok]
    assert failed == ["every valid request processed (none lost)"]


def test_the_audit_catches_a_request_processed_twice() -> None:
    result = passing_result()
    twice = replace(result, completions=[*result.completions, result.completions[0]])
    failed = [name for name, ok in verdicts(audit(twice)).items() if not ok]
    assert failed == ["no request processed twice"]


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


def test_the_audit_catches_a_valid_request_or_a_stray_message_in_the_dead_letter_queue() -> None:
    result = passing_result()
    name = "no valid request or stray message in the dead-letter queue"
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


def test_the_audit_catches_an_undrained_queue() -> None:
    result = passing_result()
    depths = {**result.final_depths, "us-west-2": QueueDepth(0, 1)}
    check = next(c for c in audit(replace(result, final_depths=depths)) if "drained" in c.name)
    assert not check.passed and check.detail == "us-west-2: 1"


def test_a_stopped_background_thread_fails_the_run() -> None:
    result = passing_result()
    broken = replace(result, thread_failures=["pollers: TypeError: boom"])
    assert not broken.passed
    summary = format_summary(broken, None, None)
    assert "a background thread stopped on a defect (pollers: TypeError: boom)" in summary
    assert "audit FAILED" in summary


def test_summary_and_report(tmp_path: Path) -> None:
    result = passing_result()
    summary = format_summary(result, tmp_path / "demo.html", None)
    assert "Sent 14 messages: 9 requests, 2 retries, 3 malformed" in summary
    assert "Dead-letter queue: 3 messages" in summary
    assert "Duplicates dropped: 2 of 2 retries" in summary
    assert re.search(r"p50 \d+\.\d\d s · p90", summary)
    assert "audit PASSED" in summary
    html = write_report(result, tmp_path / "demo.html").read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html


def test_flags() -> None:
    options = parse_args(["--count", "50", "--duplicates", "5", "--malformed", "4", "--seed", "9"])
    assert (options.count, options.duplicates, options.malformed, options.seed) == (50, 5, 4, 9)
    assert options.report.name == "demo.html"
    with pytest.raises(SystemExit):
        parse_args(["--count", "5", "--duplicates", "5"])
