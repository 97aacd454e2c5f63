"""`orchestrator simulate` end to end on a tiny horizon: tables, targets, plots, docs section."""

from __future__ import annotations

import pytest

from orchestrator.core.command import ExitCode
from orchestrator.simulator.cli import BEGIN, COMMAND, END

QUICK = ["--scale", "0.04", "--seeds", "1", "--jobs", "1"]


def test_prints_a_table_per_scenario_and_the_targets(capsys):
    assert COMMAND.main(["--scenario", "equal", *QUICK]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "equal: capacities 8/8/8 at 85% load" in out
    for name in ("round-robin", "random", "inverse-depth", "expected-wait", "oracle"):
        assert name in out
    assert "p99 <= 1.3 x oracle, equal, TTL 10 s" in out
    assert "(!)" not in out  # every run kept every request


def test_out_writes_plots_and_replaces_only_the_generated_section(tmp_path, capsys):
    docs = tmp_path / "routing.md"
    docs.write_text(f"# Routing\n\nprose above\n\n{BEGIN}\nold results\n{END}\n\nprose below\n")
    argv = ["--scenario", "hetero", "--scenario", "loss-clean", "--ttl", "10", *QUICK]
    assert COMMAND.main([*argv, "--out", str(tmp_path)]) == ExitCode.OK
    text = docs.read_text()
    assert "prose above" in text and "prose below" in text and "old results" not in text
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "| smooth-capacity | 10 |" in text
    assert "floor (1/2 TTL)" in text  # the loss scenario's detection table
    assert "![backlog per region, hetero, TTL 10 s](img/routing-backlog-hetero.png)" in text
    assert (tmp_path / "img" / "routing-backlog-hetero.png").stat().st_size > 10_000
    assert (tmp_path / "img" / "routing-backlog-loss-clean.png").exists()


def test_a_missing_out_directory_is_a_usage_error(tmp_path, capsys):
    code = COMMAND.main(["--scenario", "equal", *QUICK, "--out", str(tmp_path / "nope")])
    assert code == ExitCode.USAGE
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--ttl", "0"], ["--seeds", "0"], ["--scenario", "mars"]])
def test_bad_flags_exit_with_usage(flag, capsys):
    with pytest.raises(SystemExit) as exit_:
        COMMAND.main(flag)
    assert exit_.value.code == ExitCode.USAGE
