"""`orchestrator invoke -e <file>` runs the real distributor once, says where each record
went, and says what a real SQS event source would do with the records it reports as failed."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from localrun import invoke
from localrun.stack import RunningStack, running_stack
from localrun.stackfile import claim_stack_file, release_stack_file
from orchestrator.core.command import ExitCode

VALID = {
    "request_id": "inv-1",
    "model_name": "mistral-7b",
    "input_data_url": "s3://demo-bucket/in/1.json",
}

# What `sam local generate-event sqs receive-message --body '{"request_id": ...}'` writes
# (aws-sam-cli 1.148): the body pasted between quotes, unescaped.
SAM_EVENT = """{
  "Records": [
    {
      "messageId": "19dd0b57-b21e-4ac1-bd88-01bbb068cb78",
      "receiptHandle": "MessageReceiptHandle",
      "body": "{"request_id": "r-1", "model_name": "m", "input_data_url": "s3://b/k"}",
      "attributes": {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1523232000000",
        "SenderId": "123456789012",
        "ApproximateFirstReceiveTimestamp": "1523232000001"
      },
      "messageAttributes": {},
      "md5OfBody": "ccacc0c06aa24c8a9bde17138dd538ab",
      "eventSource": "aws:sqs",
      "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:MyQueue",
      "awsRegion": "us-east-1"
    }
  ]
}
"""


def record(message_id: str | None, body: str) -> dict[str, object]:
    shaped: dict[str, object] = {
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1764670980000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1764670980025",
        },
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:inference-master-queue-dev",
        "awsRegion": "us-east-1",
    }
    if message_id is not None:
        shaped["messageId"] = message_id
    return shaped


def write_event(path: Path, *records: dict[str, object]) -> Path:
    path.write_text(json.dumps({"Records": list(records)}))
    return path


def record_lines(text: str) -> dict[str, str]:
    """The "Where each record went" lines by their first word (the message id)."""
    section = text.split("Where each record went:\n", 1)[1].split("\n\n", 1)[0]
    return {line.split()[0]: line for line in section.splitlines()}


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    status = invoke.main(argv, out=out)
    return status, out.getvalue()


@pytest.mark.slow
def test_invoke_on_a_throwaway_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_STACK_FILE", str(tmp_path / "no-stack.json"))
    body = json.dumps(VALID)
    event = write_event(
        tmp_path / "event.json",
        record("m-valid", body),
        record("m-copy", body),
        record("m-bad", '{"request_id": "inv-2"'),
        record(None, "not json either"),  # hand-written files sometimes have no messageId
    )
    status, text = run(["-e", str(event)])
    assert status == ExitCode.OK, text
    assert "a throwaway local stack" in text
    assert json.loads(text.split("Response:\n", 1)[1].split("\n\n", 1)[0]) == {
        "batchItemFailures": []
    }
    lines = record_lines(text)
    assert "queue (attempt 1)" in lines["m-valid"]
    assert "[in queue: us-" in lines["m-valid"]  # confirmed by reading the region queues
    assert "duplicate" in lines["m-copy"]
    assert "dead-letter queue: INVALID_JSON" in lines["m-bad"]
    assert "[in queue: dead-letter queue (INVALID_JSON)]" in lines["m-bad"]
    nameless = lines["record-3"]
    assert "(no messageId)" in nameless and "no outcome" not in nameless
    assert "[in queue: dead-letter queue (INVALID_JSON)]" in nameless


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningStack, Path]]:
    """A local stack advertised in a stack file, as `orchestrator local` leaves it."""
    path = tmp_path_factory.mktemp("invoke") / "stack.json"
    with running_stack(name_suffix=f"-inv-{uuid.uuid4().hex[:8]}") as local:
        advertised = local.stack.advertised(path)
        assert claim_stack_file(advertised)
        yield local, path
        release_stack_file(advertised)


@pytest.mark.slow
def test_the_same_event_again_is_a_redelivery_and_new_ids_are_a_client_retry(
    running: tuple[RunningStack, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, stack_file = running
    monkeypatch.setenv("ORCHESTRATOR_STACK_FILE", str(stack_file))
    request = {**VALID, "request_id": f"inv-{uuid.uuid4().hex[:8]}"}
    event = write_event(tmp_path / "event.json", record("m-1", json.dumps(request)))

    status, first = run(["-e", str(event)])
    assert status == ExitCode.OK, first
    assert "the running local stack" in first
    region = record_lines(first)["m-1"].split()[2]
    assert region.startswith("us-")

    # The same messageId within the claim lease: SQS redelivering a message another
    # invocation may still hold. Reported as failed, for SQS to deliver again, exit 1.
    status, second = run(["-e", str(event)])
    assert status == ExitCode.FAILURES, second
    assert json.loads(second.split("Response:\n", 1)[1].split("\n\n", 1)[0]) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}]
    }
    line = record_lines(second)["m-1"]
    assert "FAILED (IN_PROGRESS" in line and "SQS would deliver it again" in line
    assert "back to the master queue" not in second
    assert "1 of the records are in batchItemFailures" in second
    assert "The invoker invokes once: nothing is delivered again here" in second
    assert (
        "its claim lease has not run out (the function timeout plus a margin, 70 s; it ends at"
        in second
    )
    assert "orchestrator invoke --new-message-ids" in second

    # New message ids: the same request sent again by a client, dropped as a duplicate.
    status, third = run(["--new-message-ids", "-e", str(event)])
    assert status == ExitCode.OK, third
    (line,) = record_lines(third).values()
    assert f"duplicate: already claimed, not forwarded (forwarded to {region} before)" in line


def test_sams_unescaped_body_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sam-event.json"
    path.write_text(SAM_EVENT)
    status, _ = run(["-e", str(path)])
    assert status == ExitCode.USAGE
    error = capsys.readouterr().err
    first, shown, caret, *cause = error.splitlines()
    assert first == (f"error: {path}: not valid JSON at line 6, column 18: Expecting ',' delimiter")
    assert shown.startswith("  6 |") and '"body": "{"request_id"' in shown
    assert caret.index("^") == shown.index('request_id"')
    assert "quotes are not escaped" in cause[0] and "generate-event" in cause[0]
    assert '\\"request_id\\"' in cause[1]


def test_other_json_errors_name_the_file_and_the_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"Records": [\n  {"messageId": "a",}\n]}')
    assert run(["-e", str(path)])[0] == ExitCode.USAGE
    error = capsys.readouterr().err
    assert f"{path}: not valid JSON at line 2, column" in error
    assert "quotes are not escaped" not in error


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"detail": {}}', "not an SQS event (no Records list)"),
        ('{"Records": ["a"]}', "Records[0] is a str, not an object"),
    ],
)
def test_a_file_that_is_not_an_sqs_event_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "x.json"
    path.write_text(text)
    assert run(["-e", str(path)])[0] == ExitCode.USAGE
    assert message in capsys.readouterr().err


def test_an_unusable_stack_file_is_reported_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_file = tmp_path / "stack.json"
    stack_file.write_text("{broken")
    monkeypatch.setenv("ORCHESTRATOR_STACK_FILE", str(stack_file))
    event = write_event(tmp_path / "event.json", record("m-1", json.dumps(VALID)))
    assert run(["-e", str(event)])[0] == ExitCode.USAGE
    error = capsys.readouterr().err
    assert str(stack_file) in error and "--throwaway" in error
