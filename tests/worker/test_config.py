"""Settings come from flags or, when absent, their environment variables; errors name both."""

from __future__ import annotations

import pytest

from orchestrator.worker.cli import build_parser, main
from orchestrator.worker.config import ENVIRONMENT, OPTIONS, help_table, settings_from
from orchestrator.worker.exceptions import WorkerConfigError

QUEUE = "https://sqs.us-west-2.amazonaws.com/123456789012/inference-queue-us-west-2"
BASE_ENV = {"IDEMPOTENCY_TABLE_NAME": "ledger", "AWS_REGION": "us-east-1"}


def parse(argv: list[str], env: dict[str, str] | None = None):
    args = build_parser().parse_args(argv)
    return settings_from(vars(args), {**BASE_ENV, **(env or {})})


def test_every_option_can_come_from_its_environment_variable():
    env = {
        "WORKER_QUEUE_URL": QUEUE,
        "WORKER_HIGH_PRIORITY_QUEUE_URL": QUEUE + "-high",
        "WORKER_POLL_SECONDS": "5",
        "WORKER_REGION": "us-west-2",
        "WORKER_HANDLER": "my_model:Model",
        "WORKER_BATCH_SIZE": "8",
        "WORKER_MAX_WAIT": "0.25",
        "WORKER_PREFETCH_BATCHES": "3",
        "WORKER_VISIBILITY_TIMEOUT": "60",
        "WORKER_INVOCATION_TIMEOUT": "45",
        "WORKER_DRAIN_SECONDS": "80",
        "WORKER_MAX_ATTEMPTS": "5",
        "WORKER_DEAD_LETTER_QUEUE_URL": QUEUE + "-dlq",
        "WORKER_HTTP_PORT": "9100",
        "WORKER_ALLOW_HTTPS_INPUT": "true",
        "IDEMPOTENCY_TABLE_REGION": "us-east-1",
        "RESULTS_BUCKET": "results",
        "RESULTS_PREFIX": "out/",
        "WORKERS_TABLE_NAME": "workers",
        "WORKER_ID": "pod-7",
        "REQUEST_TTL_SECONDS": "600",
        "INLINE_RESULT_MAX_BYTES": "1024",
    }
    settings = parse([], env)
    assert (settings.queue_url, settings.region, settings.handler) == (
        QUEUE,
        "us-west-2",
        "my_model:Model",
    )
    assert (settings.batch_size, settings.max_wait, settings.visibility_timeout) == (8, 0.25, 60)
    assert settings.prefetch_batches == 3
    assert (settings.invocation_timeout, settings.drain_seconds, settings.max_attempts) == (
        45,
        80,
        5,
    )
    assert settings.dead_letter_queue_url == QUEUE + "-dlq"
    assert (settings.high_priority_queue_url, settings.poll_seconds) == (QUEUE + "-high", 5)
    assert settings.http_port == 9100 and settings.allow_https_input
    assert (settings.table_name, settings.table_region) == ("ledger", "us-east-1")
    assert (settings.results_bucket, settings.results_prefix) == ("results", "out/")
    assert (settings.workers_table, settings.worker_id) == ("workers", "pod-7")
    assert (settings.request_ttl_seconds, settings.inline_result_max_bytes) == (600, 1024)


def test_a_flag_wins_over_its_environment_variable():
    settings = parse(
        ["--queue-url", QUEUE, "--handler", "m:f", "--batch-size", "4"],
        {"WORKER_BATCH_SIZE": "16"},
    )
    assert settings.batch_size == 4


def test_defaults_and_fallbacks():
    settings = parse(["--queue-url", QUEUE, "--handler", "m:f"], {"POD_NAME": "pod-3"})
    assert settings.drain_seconds == 90 and settings.http_port == 8080
    assert settings.region == "us-east-1"  # AWS_REGION: the queue's region is --region's fallback
    assert settings.table_region == "us-east-1"
    assert settings.worker_id == "pod-3"
    assert settings.results_prefix == "results/"
    assert settings.inline_result_max_bytes == 32 * 1024
    assert settings.request_ttl_seconds == 21_600
    assert (settings.poll_seconds, settings.high_priority_queue_url) == (20, None)
    assert settings.prefetch_batches == 2


def test_the_table_region_falls_back_to_aws_region_not_the_queue_region():
    settings = parse(["--queue-url", QUEUE, "--handler", "m:f", "--region", "us-west-2"])
    assert (settings.region, settings.table_region) == ("us-west-2", "us-east-1")


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        (["--handler", "m:f"], {}, "--queue-url / WORKER_QUEUE_URL"),
        (["--queue-url", QUEUE], {}, "--handler / WORKER_HANDLER"),
        (["--queue-url", QUEUE, "--handler", "nocolon"], {}, "--handler / WORKER_HANDLER"),
        (["--queue-url", QUEUE, "--handler", "m:f", "--batch-size", "0"], {}, "--batch-size"),
        (["--queue-url", QUEUE, "--handler", "m:f", "--max-wait", "soon"], {}, "--max-wait"),
        (["--queue-url", QUEUE, "--handler", "m:f", "--poll-seconds", "0"], {}, "--poll-seconds"),
        (
            ["--queue-url", QUEUE, "--handler", "m:f", "--prefetch-batches", "0"],
            {},
            "--prefetch-batches / WORKER_PREFETCH_BATCHES: must be at least 1",
        ),
        (
            ["--queue-url", QUEUE, "--handler", "m:f"],
            {"WORKER_PREFETCH_BATCHES": "9"},
            "WORKER_PREFETCH_BATCHES: at most 8",
        ),
        (
            ["--queue-url", QUEUE, "--handler", "m:f"],
            {"WORKER_POLL_SECONDS": "21"},
            "WORKER_POLL_SECONDS",
        ),
        (
            [],
            {"WORKER_QUEUE_URL": QUEUE, "WORKER_HANDLER": "m:f", "WORKER_VISIBILITY_TIMEOUT": "1"},
            "WORKER_VISIBILITY_TIMEOUT",
        ),
        (
            ["--queue-url", QUEUE, "--handler", "m:f"],
            {"INLINE_RESULT_MAX_BYTES": "500000"},
            "INLINE_RESULT_MAX_BYTES",
        ),
    ],
)
def test_a_bad_value_names_the_flag_and_the_variable(argv, env, names):
    with pytest.raises(WorkerConfigError, match=names):
        parse(argv, env)


def test_the_table_name_is_required():
    args = build_parser().parse_args(["--queue-url", QUEUE, "--handler", "m:f"])
    with pytest.raises(WorkerConfigError, match="IDEMPOTENCY_TABLE_NAME"):
        settings_from(vars(args), {"AWS_REGION": "us-east-1"})


def test_help_lists_every_flag_and_variable(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for option in OPTIONS:
        assert option.flag in text and option.env in text
    for name, _meaning, _default in ENVIRONMENT:
        assert name in text
    assert "example:" in text and "exit status:" in text
    assert help_table() in text


def test_main_reports_usage_errors_with_exit_status_2(capsys, monkeypatch):
    monkeypatch.delenv("WORKER_QUEUE_URL", raising=False)
    assert main(["--handler", "m:f"]) == 2
    assert "--queue-url / WORKER_QUEUE_URL: required" in capsys.readouterr().err


def test_main_reports_an_unloadable_handler_with_exit_status_2(capsys, monkeypatch):
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", "ledger")
    assert main(["--queue-url", QUEUE, "--handler", "no_such_module_here:Model"]) == 2
    assert (
        "--handler / WORKER_HANDLER: cannot import 'no_such_module_here'" in capsys.readouterr().err
    )
