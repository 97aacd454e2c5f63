"""The demo end to end with a small count: the audit passes and the report is written."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from localrun.demo import DemoOptions, format_summary, parse_args, run_demo
from localrun.report import write_report
from localrun.summary import DEAD_LETTERS, DemoResult, audit


@pytest.fixture(scope="module")
def result() -> DemoResult:
    options = DemoOptions(
        count=40,
        duplicates=6,
        malformed=6,
        seed=3,
        rate=80,
        gpu_seconds=0.1,
        timeout=40,
        name_suffix=f"-demo-{uuid.uuid4().hex[:8]}",
        progress_every=100,
    )
    return run_demo(options, io.StringIO())


@pytest.mark.slow
def test_small_demo_passes_its_audit(result: DemoResult, tmp_path: Path) -> None:
    assert result.passed, [c for c in result.checks if not c.passed]
    assert len(result.completions) == 28
    assert {c.region for c in result.completions} <= {"us-east-1", "us-west-2", "us-west-1"}
    assert result.dispositions["duplicate"] == 6
    assert result.dispositions["dead_lettered"] == 6
    assert result.done_seconds is not None
    assert result.samples and DEAD_LETTERS in result.samples[-1].depths
    report = write_report(result, tmp_path / "demo.html")
    html = report.read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "PASS" in html
    summary = format_summary(result, report, None)
    assert "Exactly-once audit" in summary and "audit PASSED" in summary
    assert "us-west-1" in summary and "Dead-letter queue: 6 messages" in summary


@pytest.mark.slow
def test_the_audit_catches_a_lost_and_a_twice_processed_request(result: DemoResult) -> None:
    completions = list(result.completions)
    lost = DemoResult(**{**vars(result), "completions": completions[1:], "checks": []})
    twice = DemoResult(
        **{**vars(result), "completions": [*completions, completions[0]], "checks": []}
    )
    assert not audit(lost)[0].passed
    assert not audit(twice)[1].passed
    no_dead = DemoResult(**{**vars(result), "dead_letters": [], "checks": []})
    assert not audit(no_dead)[3].passed


def test_flags() -> None:
    options = parse_args(["--count", "50", "--duplicates", "5", "--malformed", "4", "--seed", "9"])
    assert (options.count, options.duplicates, options.malformed, options.seed) == (50, 5, 4, 9)
    assert options.report.name == "demo.html"
    with pytest.raises(SystemExit):
        parse_args(["--count", "5", "--duplicates", "5"])


@pytest.mark.slow
def test_the_demo_command(tmp_path: Path) -> None:
    """`python -m localrun.demo` as `make demo` runs it: summary on stdout, report written,
    the distributor's own output kept out of the console, exit status 0."""
    env = {
        **os.environ,
        "ORCHESTRATOR_STACK_FILE": str(tmp_path / "stack.json"),
    }
    report = tmp_path / "report" / "demo.html"
    command = [sys.executable, "-m", "localrun.demo", "--count", "30", "--duplicates", "4"]
    command += ["--malformed", "4", "--gpu-ms", "100", "--rate", "100", "--report", str(report)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit PASSED" in done.stdout
    assert f"Report: {report}" in done.stdout
    assert '"_aws"' not in done.stdout  # EMF metrics go to the distributor's log
    assert report.exists() and (tmp_path / "report" / "demo-distributor.log").exists()
    assert not (tmp_path / "stack.json").exists()  # advertised while running, then removed
