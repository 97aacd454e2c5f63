"""`python -m localrun.invoke -e <file>` runs the real distributor once and says where each
record went."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from localrun import invoke

VALID = {
    "request_id": "inv-1",
    "model_name": "mistral-7b",
    "input_data_url": "s3://demo-bucket/in/1.json",
}


def record(message_id: str, body: str) -> dict[str, object]:
    return {
        "messageId": message_id,
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


@pytest.fixture
def event_file(tmp_path: Path) -> Path:
    body = json.dumps(VALID)
    event = {
        "Records": [
            record("m-valid", body),
            record("m-copy", body),
            record("m-bad", '{"request_id": "inv-2"'),
        ]
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return path


@pytest.mark.slow
def test_invoke_on_a_throwaway_stack(
    event_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_STACK_FILE", str(tmp_path / "no-stack.json"))
    out = io.StringIO()
    assert invoke.main(["-e", str(event_file)], out=out) == 0
    text = out.getvalue()
    assert "a throwaway local stack" in text
    assert json.loads(text.split("Response:\n", 1)[1].split("\n\n", 1)[0]) == {
        "batchItemFailures": []
    }
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  m-")}
    assert "queue (attempt 1)" in lines["m-valid"]
    assert "[in queue: us-" in lines["m-valid"]  # confirmed by reading the region queues
    assert "duplicate" in lines["m-copy"]
    assert "dead-letter queue: INVALID_JSON" in lines["m-bad"]
    assert "[in queue: dead-letter queue (INVALID_JSON)]" in lines["m-bad"]


def test_a_file_that_is_not_an_sqs_event_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"detail": {}}')
    assert invoke.main(["-e", str(path)], out=io.StringIO()) == 2
