"""test-tools/producer.py against in-process moto."""

from __future__ import annotations

import contextlib
import json
import re
import runpy
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tools_support import drain, free_port

from orchestrator.cli import malformed, sender, traffic
from orchestrator.cli import send as producer
from orchestrator.core.request import InvalidRequestError, parse_request

TOOLS = Path(__file__).resolve().parents[2] / "test-tools"

REQ_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class Spy:
    """Delegates to a boto3 client and records the API calls."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if not callable(target):
            return target

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return target(**kwargs)

        return call

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)


def run(argv: list[str], client: Any) -> int:
    return producer.main(argv, client=client)


def bodies(client: Any, url: str) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in drain(client, url)]


def test_sends_count_messages_in_the_published_format(master, capsys) -> None:
    client, url = master
    assert run(["--queue-url", url, "--count", "5"], client) == 0
    docs = bodies(client, url)
    assert len(docs) == 5
    assert len({d["request_id"] for d in docs}) == 5
    for doc in docs:
        parse_request(json.dumps(doc))
        assert REQ_ID.match(doc["request_id"])
        assert doc["model_name"] == traffic.DEFAULT_MODEL
        assert doc["input_data_url"].startswith("s3://")
        assert doc["callback_sns_topic"].startswith("arn:aws:sns:")
        assert doc["priority"] == "normal"
        assert ISO_Z.match(doc["timestamp"])
        assert isinstance(doc["metadata"], dict) and doc["metadata"]["user_id"]
    out = capsys.readouterr().out
    assert "sent:     5" in out and "failed:   0" in out and "rate:" in out


def test_priority_and_model_flags(master) -> None:
    client, url = master
    argv = ["--queue-url", url, "--count", "3", "--priority", "high", "--model", "llama-3-8b"]
    assert run(argv, client) == 0
    docs = bodies(client, url)
    assert {(d["priority"], d["model_name"]) for d in docs} == {("high", "llama-3-8b")}


def test_mixed_priority_cycles(master) -> None:
    client, url = master
    assert run(["--queue-url", url, "--count", "6", "--priority", "mixed"], client) == 0
    priorities = sorted(d["priority"] for d in bodies(client, url))
    assert priorities == ["high", "high", "low", "low", "normal", "normal"]


def test_duplicate_with_request_id_sends_one_request_several_times(master) -> None:
    client, url = master
    argv = ["--queue-url", url, "--duplicate", "--request-id", "test-dup-001", "--count", "4"]
    assert run(argv, client) == 0
    docs = bodies(client, url)
    assert [d["request_id"] for d in docs] == ["test-dup-001"] * 4
    # same payload (timestamp excluded): the distributor sees retries, not conflicts
    hashes = {parse_request(json.dumps(d)).payload_hash for d in docs}
    assert len(hashes) == 1


def test_duplicate_without_request_id_generates_one_id(master) -> None:
    client, url = master
    assert run(["--queue-url", url, "--duplicate", "--count", "3"], client) == 0
    ids = {d["request_id"] for d in bodies(client, url)}
    assert len(ids) == 1 and REQ_ID.match(ids.pop())


@pytest.mark.parametrize(
    ("count", "expected"),
    [(1, ["job-7"]), (3, ["job-7-1", "job-7-2", "job-7-3"])],
)
def test_request_id_without_duplicate_gets_a_suffix(master, count, expected) -> None:
    client, url = master
    assert run(["--queue-url", url, "--request-id", "job-7", "--count", str(count)], client) == 0
    assert sorted(d["request_id"] for d in bodies(client, url)) == expected


def test_suffix_is_zero_padded_to_the_count_width() -> None:
    ids = traffic.plan_request_ids(12, "job", duplicate=False)
    assert ids[0] == "job-01" and ids[-1] == "job-12"


@pytest.mark.parametrize(("batch_size", "calls"), [(1, 0), (3, 3), (10, 1)])
def test_batch_size_uses_send_message_batch(master, batch_size, calls) -> None:
    client, url = master
    spy = Spy(client)
    argv = ["--queue-url", url, "--count", "7", "--batch-size", str(batch_size)]
    assert run(argv, spy) == 0
    assert spy.count("send_message_batch") == calls
    assert spy.count("send_message") == (7 if batch_size == 1 else 0)
    assert len(drain(client, url)) == 7


def test_rate_paces_the_sends(master) -> None:
    client, url = master
    plan = traffic.plan_messages(count=4)
    slept: list[float] = []
    report = sender.send_messages(
        client, url, plan, batch_size=2, rate=20.0, sleep=lambda s: slept.append(s)
    )
    assert report.sent == 4
    # two batches of two at 20 msg/s: the second waits about 2/20 s
    assert len(slept) == 1 and 0.0 < slept[0] <= 0.1


def test_json_summary_lists_the_sent_request_ids(master, capsys) -> None:
    client, url = master
    assert run(["--queue-url", url, "--count", "3", "--malformed", "2", "--json"], client) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sent"] == 5 and summary["valid_sent"] == 3 and summary["malformed_sent"] == 2
    assert summary["failed"] == 0 and summary["failures"] == []
    assert {"elapsed_seconds", "rate_per_second", "queue_url"} <= summary.keys()
    valid_ids = set()
    for message in drain(client, url):
        with contextlib.suppress(InvalidRequestError):
            valid_ids.add(parse_request(message["Body"]).request_id)
    assert sorted(summary["request_ids"]) == sorted(valid_ids)
    assert [m["kind"] for m in summary["malformed"]] == list(malformed.TRAFFIC_KINDS[:2])


def test_malformed_messages_are_spread_and_all_fail_validation(master) -> None:
    client, url = master
    assert run(["--queue-url", url, "--count", "4", "--malformed", "3"], client) == 0
    messages = drain(client, url)
    assert len(messages) == 7
    valid = invalid = 0
    for message in messages:
        try:
            parse_request(message["Body"])
            valid += 1
        except InvalidRequestError:
            invalid += 1
    assert (valid, invalid) == (4, 3)


def test_malformed_messages_fail_with_the_code_their_kind_promises(master, capsys) -> None:
    """What reaches the queue is what the summary says was sent: one of every traffic kind,
    each rejected by the distributor's parser with its catalogued error code."""
    client, url = master
    kinds = len(malformed.TRAFFIC_KINDS)
    argv = ["--queue-url", url, "--count", "0", "--malformed", str(kinds), "--batch-size", "10"]
    assert run([*argv, "--json"], client) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(m["kind"] for m in summary["malformed"]) == sorted(malformed.TRAFFIC_KINDS)
    promised = Counter(malformed.BY_KIND[m["kind"]].error_code for m in summary["malformed"])
    got: Counter[str] = Counter()
    for message in drain(client, url):
        with pytest.raises(InvalidRequestError) as rejected:
            parse_request(message["Body"])
        got[rejected.value.code] += 1
    assert got == promised


def test_interleave_spreads_malformed_slots() -> None:
    slots = list(traffic.interleave(6, 2))
    assert sum(slots) == 2 and len(slots) == 8
    assert slots[0] is False and slots[-1] is True


def test_partial_batch_failure_is_counted(master) -> None:
    client, url = master

    class HalfFails(Spy):
        def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
            entries = kwargs["Entries"]
            client.send_message_batch(QueueUrl=kwargs["QueueUrl"], Entries=entries[:1])
            return {
                "Successful": [{"Id": entries[0]["Id"]}],
                "Failed": [
                    {"Id": e["Id"], "Code": "InternalError", "Message": "boom"} for e in entries[1:]
                ],
            }

    plan = traffic.plan_messages(count=4)
    report = sender.send_messages(HalfFails(client), url, plan, batch_size=2)
    assert (report.sent, report.failed) == (2, 2)
    assert {f["code"] for f in report.failures} == {"InternalError"}


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--count", "0"], "--count must be ≥ 1"),
        (["--count", "-3"], "--count"),
        (["--interval", "0.1", "--rate", "5"], "--interval and --rate"),
        (["--interval", "-1"], "argument --interval: must be a finite number ≥ 0"),
        (["--interval", "inf"], "argument --interval: must be a finite number ≥ 0, got 'inf'"),
        (["--interval", "nan"], "argument --interval: must be a finite number ≥ 0, got 'nan'"),
        (["--interval", "1e400"], "argument --interval: must be a finite number"),
        (["--interval", "soon"], "argument --interval: must be a number, got 'soon'"),
        (["--rate", "0"], "argument --rate: must be a finite number > 0"),
        (["--rate", "inf"], "argument --rate: must be a finite number > 0, got 'inf'"),
        (["--rate", "nan"], "argument --rate: must be a finite number > 0, got 'nan'"),
        (["--endpoint-url", "127.0.0.1:1234"], "argument --endpoint-url: must be a URL"),
        (["--endpoint-url", "localhost:4566"], "argument --endpoint-url: must be a URL"),
        (["--region", "mars-central-9"], "argument --region: unknown region 'mars-central-9'"),
        (["--region", "us_east_1"], "argument --region: unknown region 'us_east_1'"),
        (["--region", "zz-north-7"], "unknown region 'zz-north-7' (not an SQS region of any"),
        (["--wait-timeout", "inf"], "argument --wait-timeout"),
        (["--table", "t"], "--table is used only with --wait"),
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "11"], "--batch-size"),
        (["--malformed", "-1"], "--malformed"),
        (["--model", "bad model!"], "--model"),
        (["--request-id", "bad id!"], "--request-id"),
        (["--request-id", "x" * 128, "--count", "2"], "--request-id"),
        (["--callback-sns-topic", "nope"], "--callback-sns-topic"),
        (["--priority", "urgent"], "--priority"),
    ],
)
def test_flag_errors_are_one_line_naming_the_flag(argv, flag, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        producer.main(["--queue-url", "https://sqs.us-east-1.amazonaws.com/1/q", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_endpoint_without_queue_url_is_an_error(capsys) -> None:
    with pytest.raises(SystemExit):
        producer.main(["--endpoint-url", "http://127.0.0.1:1"])
    assert "--queue-url is required" in capsys.readouterr().err


def test_no_queue_and_no_stack_file_names_the_flag_and_the_file(capsys) -> None:
    with pytest.raises(SystemExit):
        producer.main([])
    err = capsys.readouterr().err
    assert "--queue-url is required" in err and "no-local-stack.json" in err


def test_broken_stack_file_is_one_line_error(tmp_path, monkeypatch, capsys) -> None:
    path = tmp_path / "stack.json"
    path.write_text("{not json")
    monkeypatch.setenv("ORCHESTRATOR_STACK_FILE", str(path))
    with pytest.raises(SystemExit) as exit_info:
        producer.main([])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: local stack file:") and err.count("\n") == 1


def test_unreachable_endpoint_is_one_line(capsys) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    code = producer.main(["--queue-url", f"{endpoint}/123456789012/q", "--endpoint-url", endpoint])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: cannot reach SQS at {endpoint}: ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_missing_queue_is_one_line(aws, capsys) -> None:
    import boto3

    client = boto3.client("sqs", region_name="us-east-1")
    code = producer.main(
        ["--queue-url", "https://sqs.us-east-1.amazonaws.com/123456789012/nope"], client=client
    )
    assert code == 2
    assert capsys.readouterr().err.startswith("error: queue does not exist:")


def test_region_comes_from_an_aws_queue_url(aws, capsys) -> None:
    """No --region: the client signs for the queue URL's region, so a us-west-2 queue is
    found although the default region is us-east-1."""
    import boto3

    url = boto3.client("sqs", region_name="us-west-2").create_queue(QueueName="west")["QueueUrl"]
    assert "us-west-2" in url
    assert producer.main(["--queue-url", url, "--count", "2"]) == 0
    assert "sent:     2" in capsys.readouterr().out


def test_a_region_that_contradicts_the_queue_url_is_named(capsys) -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/inference-master-queue-dev"
    with pytest.raises(SystemExit) as exit_info:
        producer.main(["--queue-url", url, "--region", "us-west-2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --region: us-west-2 does not match the queue URL, which is in us-east-1\n"
    )


def test_a_region_that_contradicts_the_stack_file_is_named(tmp_path, monkeypatch, capsys) -> None:
    """The local stack's URLs do not say their region: the stack file does. Before any call
    (the endpoint here is not even listening)."""
    from tools_support import write_stack_file

    endpoint = f"http://127.0.0.1:{free_port()}"
    path = tmp_path / "stack.json"
    write_stack_file(path, endpoint, f"{endpoint}/123456789012/master", {})
    monkeypatch.setenv("ORCHESTRATOR_STACK_FILE", str(path))
    with pytest.raises(SystemExit) as exit_info:
        producer.main(["--region", "us-west-2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --region: us-west-2 does not match the local stack")
    assert "created this queue in us-east-1" in err and err.count("\n") == 1


def test_a_local_stack_url_given_by_hand_gets_the_stack_region_and_table(
    tmp_path, monkeypatch
) -> None:
    """The local stack's URLs do not say their region; the stack file does, even when the
    URL is typed rather than read from it."""
    from tools_support import write_stack_file

    endpoint = "http://127.0.0.1:4566"
    master = f"{endpoint}/123456789012/master"
    path = tmp_path / "stack.json"
    write_stack_file(path, endpoint, master, {})
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "primary_region": "us-west-2"}))
    monkeypatch.setenv("ORCHESTRATOR_STACK_FILE", str(path))
    args = producer.build_parser().parse_args(["--queue-url", master, "--wait"])
    target = producer.resolve_target(args)
    assert (target.region, target.endpoint_url) == ("us-west-2", endpoint)
    assert producer.resolve_table(args, target) == ("inference-idempotency-dev", "us-west-2")
    # a URL the stack does not list: the configured default region, the URL's own host
    other = producer.resolve_target(
        producer.build_parser().parse_args(["--queue-url", "http://127.0.0.1:9/1/q"])
    )
    assert (other.region, other.endpoint_url) == ("us-east-1", "http://127.0.0.1:9")


def test_an_unknown_configured_region_is_refused_before_any_call(monkeypatch, capsys) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: no call may be made
    monkeypatch.setenv("AWS_DEFAULT_REGION", "mars-central-9")
    with pytest.raises(SystemExit) as exit_info:
        producer.main(["--queue-url", f"{endpoint}/123456789012/q"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(
        "error: the configured default region: unknown region 'mars-central-9'"
    )


def test_ctrl_c_during_start_up_is_one_line_and_130(master, capsys) -> None:
    _client, url = master

    class CtrlCOnFirstCall:
        def __getattr__(self, name: str) -> Any:
            raise KeyboardInterrupt

    assert run(["--queue-url", url], CtrlCOnFirstCall()) == 130
    captured = capsys.readouterr()
    assert captured.err == "error: interrupted\n" and captured.out == ""


def test_ctrl_c_while_the_script_imports_is_one_line_and_130(monkeypatch, capsys) -> None:
    """Ctrl-C while test-tools/producer.py imports the package (boto3, pydantic: a moment)."""

    class CtrlCOnImport:
        @staticmethod
        def find_spec(name: str, *args: Any) -> None:
            if name == "orchestrator.cli.send":
                raise KeyboardInterrupt

    monkeypatch.delitem(sys.modules, "orchestrator.cli.send")
    monkeypatch.setattr(sys, "meta_path", [CtrlCOnImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(TOOLS / "producer.py"), run_name="__main__")
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_progress_bar_only_when_asked(master, capsys) -> None:
    client, url = master
    run(["--queue-url", url, "--count", "2"], client)
    assert "[" not in capsys.readouterr().err  # stderr is not a TTY under pytest
    run(["--queue-url", url, "--count", "2", "--progress"], client)
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("sending 2/2 (100.0%)")
    assert "\x1b[" not in err  # a log gets lines, not a redrawn bar


def test_unknown_profile_names_the_flag(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        producer.main(
            [
                "--queue-url",
                "https://sqs.us-east-1.amazonaws.com/1/q",
                "--profile",
                "no-such-profile",
            ]
        )
    assert exit_info.value.code == 2
    assert "--profile: " in capsys.readouterr().err


def test_stack_file_without_master_queue_is_rejected(tmp_path) -> None:
    from orchestrator.core import stackfile

    path = tmp_path / "stack.json"
    path.write_text('{"endpoint_url": "http://127.0.0.1:1"}')
    with pytest.raises(stackfile.StackFileError, match="master_queue_url"):
        stackfile.load_stack(path)
    assert stackfile.load_stack(tmp_path / "absent.json") is None
