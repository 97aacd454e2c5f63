"""`orchestrator send --wait` against in-process moto: records written as the distributor and a
worker would (`RequestRecord.to_item`), read back with BatchGetItem while the command waits."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from tools_support import create_request_table, drain, request_record

from orchestrator.cli import send as producer
from orchestrator.cli import wait
from orchestrator.cli.records import MAX_BATCH_GET_KEYS, RequestTable
from orchestrator.core.record import RequestRecord

TABLE = "inference-idempotency-test"


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wait, "POLL_MIN", 0.01)
    monkeypatch.setattr(wait, "POLL_MAX", 0.02)


@pytest.fixture
def table(aws: None) -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_request_table(client, TABLE)
    return client


class Scripted:
    """The request table as the pipeline moves requests on: before the n-th BatchGetItem,
    the records of step n are written."""

    def __init__(self, client: Any, steps: list[list[RequestRecord]]) -> None:
        self.client, self.steps, self.reads = client, steps, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def batch_get_item(self, **kwargs: Any) -> Any:
        for record in self.steps[self.reads] if self.reads < len(self.steps) else []:
            self.client.put_item(TableName=TABLE, Item=record.to_item())
        self.reads += 1
        return self.client.batch_get_item(**kwargs)


def send(master: tuple[Any, str], dynamodb: Any, *extra: str) -> int:
    client, url = master
    argv = ["--queue-url", url, "--request-id", "job", "--table", TABLE, "--wait", *extra]
    return producer.main(argv, client=client, dynamodb=dynamodb)


def test_follows_each_request_to_its_result(master, table, capsys) -> None:
    ids = ["job-1", "job-2", "job-3"]
    steps = [
        [],  # still on the master queue
        [request_record(rid, "FORWARDED") for rid in ids],
        [request_record("job-2", "RUNNING", worker_id="w1")],
        [request_record("job-2", "SUCCEEDED", result='{"label": 2}')],
        [
            request_record("job-1", "SUCCEEDED", result_location="s3://results/job-1.json"),
            request_record("job-3", "SUCCEEDED", result='{"label": 3}'),
        ],
    ]
    assert send(master, Scripted(table, steps), "--count", "3") == 0
    captured = capsys.readouterr()
    results = [line for line in captured.out.splitlines() if line.startswith("job-")]
    assert results[0] == 'job-2  SUCCEEDED  us-west-2  {"label": 2}'
    assert sorted(results[1:]) == [
        "job-1  SUCCEEDED  us-west-2  s3://results/job-1.json",
        'job-3  SUCCEEDED  us-west-2  {"label": 3}',
    ]
    # the live count, as lines in plain mode: each change once
    assert captured.err.splitlines() == [
        "waiting: 0 queued, 3 dispatched, 0 running, 0 done",
        "waiting: 0 queued, 2 dispatched, 1 running, 0 done",
        "waiting: 0 queued, 2 dispatched, 0 running, 1 done (1 succeeded)",
        "waiting: 0 queued, 0 dispatched, 0 running, 3 done (3 succeeded)",
    ]
    assert "requests: 0 queued, 0 dispatched, 0 running, 3 done (3 succeeded)" in captured.out


def test_a_failed_or_expired_request_makes_exit_1_and_shows_the_error(
    master, table, capsys
) -> None:
    steps = [
        [
            request_record("job-1", "SUCCEEDED", result="ok"),
            request_record("job-2", "FAILED", error_code="MODEL_ERROR", error_message="CUDA OOM"),
            request_record("job-3", "EXPIRED", error_message="older than its deadline"),
        ]
    ]
    assert send(master, Scripted(table, steps), "--count", "3") == 1
    out = capsys.readouterr().out
    assert "job-2  FAILED  us-west-2  MODEL_ERROR: CUDA OOM" in out
    assert "job-3  EXPIRED  us-west-2  older than its deadline" in out
    assert "1 expired, 1 failed, 1 succeeded" in out


def test_timeout_is_exit_1_with_what_was_left(master, table, capsys) -> None:
    assert send(master, table, "--count", "2", "--wait-timeout", "0.2") == 1
    err = capsys.readouterr().err
    assert err.endswith("error: timed out after 0.2 s: 2 queued, 0 dispatched, 0 running, 0 done\n")


def test_json_carries_the_records(master, table, capsys) -> None:
    done = request_record("job", "SUCCEEDED", result="42")
    assert send(master, Scripted(table, [[done]]), "--count", "1", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["request_ids"] == ["job"]
    assert summary["wait"]["all_succeeded"] is True
    assert summary["wait"]["records"] == {"job": done.as_dict()}
    assert summary["wait"]["stages"] == {"queued": 0, "dispatched": 0, "running": 0, "done": 1}


def test_duplicates_are_waited_for_once(master, table, capsys) -> None:
    scripted = Scripted(table, [[request_record("job", "SUCCEEDED", result="1")]])
    assert send(master, scripted, "--count", "3", "--duplicate") == 0
    out = capsys.readouterr().out
    assert out.count("job  SUCCEEDED") == 1 and scripted.reads == 1


def test_without_a_table_nothing_is_sent(master, capsys) -> None:
    client, url = master
    with pytest.raises(SystemExit) as exit_info:
        producer.main(["--queue-url", url, "--wait"], client=client)
    assert exit_info.value.code == 2
    assert "--wait needs the request table: give --table NAME" in capsys.readouterr().err
    assert drain(client, url) == []


def test_records_are_read_100_keys_per_call(table) -> None:
    ids = [f"req-{n}" for n in range(250)]
    for rid in ids[::2]:
        table.put_item(TableName=TABLE, Item=request_record(rid, "RUNNING").to_item())
    reader = RequestTable(table, TABLE)
    found = reader.get_many(ids)
    assert sorted(found) == sorted(ids[::2])
    assert reader.calls == 3 == -(-len(ids) // MAX_BATCH_GET_KEYS)


def test_unprocessed_keys_are_asked_again_after_a_backoff(table) -> None:
    for rid in ("a", "b", "c"):
        table.put_item(TableName=TABLE, Item=request_record(rid, "FORWARDED").to_item())

    class Throttled:
        """DynamoDB under load: the first answer leaves all but one key unprocessed."""

        def __init__(self) -> None:
            self.calls = 0

        def batch_get_item(self, RequestItems: Any) -> Any:
            self.calls += 1
            keys = RequestItems[TABLE]["Keys"]
            if self.calls > 1:
                return table.batch_get_item(RequestItems=RequestItems)
            answer = table.batch_get_item(RequestItems={TABLE: {"Keys": keys[:1]}})
            answer["UnprocessedKeys"] = {TABLE: {"Keys": keys[1:]}}
            return answer

    slept: list[float] = []
    record_sleep: Callable[[float], None] = slept.append
    reader = RequestTable(Throttled(), TABLE, sleep=record_sleep)
    assert sorted(reader.get_many(["a", "b", "c"])) == ["a", "b", "c"]
    assert len(slept) == 1 and 0 <= slept[0] <= 0.05


def test_on_a_terminal_results_print_above_a_live_count(master, table, capsys, monkeypatch) -> None:
    from orchestrator.cli import output

    monkeypatch.setattr(output, "interactive", lambda stream: True)
    steps = [
        [request_record("job-1", "RUNNING")],
        [request_record("job-1", "SUCCEEDED", result="7"), request_record("job-2", "FORWARDED")],
        [request_record("job-2", "SUCCEEDED", result="8")],
    ]
    assert send(master, Scripted(table, steps), "--count", "2") == 0
    captured = capsys.readouterr()
    # both streams are the one terminal: results go through the live display, above its table
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", captured.err)
    assert "job-1  SUCCEEDED  us-west-2  7" in shown and "job-2  SUCCEEDED  us-west-2  8" in shown
    assert "\x1b[32mjob-1" in captured.err  # green
    assert "Waiting for 2 requests" in shown and "waiting:" not in shown  # a table, not lines
    assert "2 done (2 succeeded)" in captured.out


def test_the_live_count_shows_each_stage() -> None:
    from rich.console import Console

    report = wait.WaitReport(["a", "b", "c", "d"], timeout=60)
    report.records = {
        "b": request_record("b", "FORWARDED"),
        "c": request_record("c", "RUNNING"),
        "d": request_record("d", "EXPIRED"),
    }
    console = Console(record=True, width=80)
    console.print(wait.render_stages(report, elapsed=12.4))
    text = console.export_text()
    assert "Waiting for 4 requests" in text
    row = next(line for line in text.splitlines() if "/ 60 s" in line)
    assert row.replace("│", " ").split() == ["1", "1", "1", "1", "12", "/", "60", "s"]


def test_ctrl_c_while_waiting_prints_where_requests_are_and_exits_130(
    master, table, capsys
) -> None:
    class CtrlCOnSecondRead(Scripted):
        def batch_get_item(self, **kwargs: Any) -> Any:
            if self.reads == 1:
                raise KeyboardInterrupt
            return super().batch_get_item(**kwargs)

    scripted = CtrlCOnSecondRead(table, [[request_record("job", "RUNNING")]])
    assert send(master, scripted, "--count", "1") == 130
    captured = capsys.readouterr()
    assert "requests: 0 queued, 0 dispatched, 1 running, 0 done" in captured.out
    assert captured.err.endswith("error: interrupted\n")
