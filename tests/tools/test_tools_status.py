"""`orchestrator status REQUEST_ID` against in-process moto: the record, as a person reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from tools_support import create_request_table, request_record, write_stack_file

from orchestrator.cli import status
from orchestrator.core.record import RequestRecord

TABLE = "inference-idempotency-test"


@pytest.fixture
def table(aws: None) -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_request_table(client, TABLE)
    return client


def put(client: Any, record: RequestRecord) -> None:
    client.put_item(TableName=TABLE, Item=record.to_item())


def test_prints_a_finished_request_with_its_result_and_times(table, capsys) -> None:
    put(
        table,
        request_record(
            "req-1",
            "SUCCEEDED",
            worker_id="worker-a",
            attempt=1,
            started_at="2026-01-01T00:00:02.000Z",
            finished_at="2026-01-01T00:00:05.000Z",
            result='{"label": 7}',
        ),
    )
    assert status.main(["req-1", "--table", TABLE], dynamodb=table) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines["status"] == "SUCCEEDED"
    assert lines["region"] == "us-west-2"
    assert lines["result"] == '{"label": 7}'
    assert lines["finished_at"] == "2026-01-01T00:00:05.000Z"
    # epoch fields are shown with their time, so a person can read the lease and the TTL
    assert lines["expires_at"] == "1769817600 (2026-01-31T00:00:00.000Z)"
    assert "error_code" not in lines  # absent fields are not printed


def test_json_is_the_record(table, capsys) -> None:
    record = request_record("req-2", "FAILED", error_code="MODEL_ERROR", error_message="OOM")
    put(table, record)
    assert status.main(["req-2", "--table", TABLE, "--json"], dynamodb=table) == 0
    assert json.loads(capsys.readouterr().out) == record.as_dict()


def test_unknown_request_is_one_line_and_exit_1(table, capsys) -> None:
    assert status.main(["req-nope", "--table", TABLE], dynamodb=table) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: no request 'req-nope' in table {TABLE} (us-east-1)\n"


def test_missing_table_is_one_line_and_exit_2(aws, capsys) -> None:
    client = boto3.client("dynamodb", region_name="us-west-1")
    assert status.main(["req-1", "--table", "absent"], dynamodb=client) == 2
    assert capsys.readouterr().err == "error: table absent does not exist in us-west-1\n"


def test_table_and_region_come_from_the_stack_file(table, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "stack.json"
    write_stack_file(path, "http://127.0.0.1:1", "http://127.0.0.1:1/1/master", {})
    document = json.loads(path.read_text())
    document.update(table_name=TABLE, primary_region="us-west-2")
    path.write_text(json.dumps(document))
    monkeypatch.setenv("ORCHESTRATOR_STACK_FILE", str(path))
    args = status.build_parser().parse_args(["req-1"])
    assert status.resolve_table(args) == (TABLE, "us-west-2", "http://127.0.0.1:1", None)
    # the environment names the table (and its region) as the worker's does
    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", "other")
    monkeypatch.setenv("IDEMPOTENCY_TABLE_REGION", "eu-west-1")
    assert status.resolve_table(args) == ("other", "eu-west-1", None, None)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["req-1"], {}, "error: give the request table with --table NAME"),
        (["req-1", "--table", "t", "--region", "mars-central-9"], {}, "argument --region"),
        (["req-1", "--table", "t"], {"IDEMPOTENCY_TABLE_REGION": "zz-up-1"}, "IDEMPOTENCY_TABLE"),
        (["req-1", "--table", "t", "--endpoint-url", "127.0.0.1:9"], {}, "--endpoint-url"),
        ([], {}, "REQUEST_ID"),
    ],
)
def test_usage_errors_are_one_line(argv, env, message, monkeypatch, capsys) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        status.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_rich_output_colours_the_status(table, capsys, monkeypatch) -> None:
    from orchestrator.cli import output

    put(table, request_record("req-3", "FAILED", error_message="bad input"))
    monkeypatch.setattr(output, "interactive", lambda stream: True)
    assert status.main(["req-3", "--table", TABLE], dynamodb=table) == 0
    out = capsys.readouterr().out
    assert "Request req-3" in out and "bad input" in out
    assert "\x1b[31mFAILED" in out  # red
