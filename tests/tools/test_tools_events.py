"""events/*.json: valid Lambda SQS events whose valid bodies pass the request parser."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from orchestrator.cli.malformed import CASES
from orchestrator.core.request import (
    MAX_BODY_BYTES,
    SQS_MAX_MESSAGE_BYTES,
    ErrorCode,
    InvalidRequestError,
    parse_request,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"
MASTER_ARN = "arn:aws:sqs:us-east-1:123456789012:inference-master-queue-dev"
RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}
OUR_EVENTS = [
    "sqs-three-requests.json",
    "sqs-duplicates.json",
    "sqs-malformed-mix.json",
    "sqs-oversize.json",
]


def load(name: str) -> list[dict[str, Any]]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))["Records"]


def outcome(body: str) -> str:
    try:
        parse_request(body)
    except InvalidRequestError as exc:
        return exc.code.value
    return "ok"


def attributes_md5(attrs: dict[str, Any]) -> str:
    """SQS's MD5 of message attributes (String values), as the Lambda event spells them."""
    digest = hashlib.md5()
    for name in sorted(attrs):
        for part in (name, attrs[name]["dataType"]):
            raw = part.encode()
            digest.update(struct.pack("!I", len(raw)) + raw)
        raw = attrs[name]["stringValue"].encode()
        digest.update(b"\x01" + struct.pack("!I", len(raw)) + raw)
    return digest.hexdigest()


@pytest.mark.parametrize("name", OUR_EVENTS)
def test_event_is_a_well_formed_sqs_event(name: str) -> None:
    records = load(name)
    assert records
    assert len({r["messageId"] for r in records}) == len(records)
    for record in records:
        assert record.keys() >= RECORD_KEYS
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == MASTER_ARN
        assert record["awsRegion"] == "us-east-1"
        assert {"ApproximateReceiveCount", "SentTimestamp"} <= record["attributes"].keys()
        assert all(isinstance(v, str) for v in record["attributes"].values())
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        if record["messageAttributes"]:
            expected = attributes_md5(record["messageAttributes"])
            assert record["md5OfMessageAttributes"] == expected
        assert len(record["body"].encode()) <= SQS_MAX_MESSAGE_BYTES


def test_every_events_file_is_valid_json() -> None:
    for path in EVENTS.glob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))


def test_three_requests_are_valid_and_distinct() -> None:
    records = load("sqs-three-requests.json")
    assert len(records) == 3
    parsed = [parse_request(r["body"]) for r in records]
    assert len({p.request_id for p in parsed}) == 3


def test_duplicates_hold_two_copies_of_one_request() -> None:
    parsed = [parse_request(r["body"]) for r in load("sqs-duplicates.json")]
    counts = Counter(p.request_id for p in parsed)
    assert sorted(counts.values()) == [1, 1, 2]
    duplicated = next(rid for rid, n in counts.items() if n == 2)
    hashes = {p.payload_hash for p in parsed if p.request_id == duplicated}
    assert len(hashes) == 1  # same payload: a retry, not a conflict


def test_malformed_mix_has_valid_and_every_kind_of_invalid() -> None:
    outcomes = Counter(outcome(r["body"]) for r in load("sqs-malformed-mix.json"))
    assert outcomes["ok"] == 3
    # every way the catalogue says a body can be wrong, but its size (sqs-oversize.json)
    expected = {case.error_code for case in CASES} - {ErrorCode.BODY_TOO_LARGE}
    assert set(outcomes) - {"ok"} == expected


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("events_generate", EVENTS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_events_are_what_the_generator_writes() -> None:
    """Change the contract or the catalogue, then run `python events/generate.py`."""
    generated = _generator().build()
    assert sorted(generated) == sorted(p.name for p in EVENTS.glob("*.json"))
    for name, text in generated.items():
        assert (EVENTS / name).read_text(encoding="utf-8") == text, name


def test_records_follow_sam_generate_event_sqs_receive_message() -> None:
    """The keys, in order, of `sam local generate-event sqs receive-message`'s template."""
    samcli = pytest.importorskip("samcli")
    template = Path(samcli.__file__).parent / "lib/generated_sample_events/events/sqs/Sqs.json"
    sam = json.loads(template.read_text(encoding="utf-8"))["Records"][0]
    for name in OUR_EVENTS:
        for record in load(name):
            keys = [k for k in record if k != "md5OfMessageAttributes"]
            assert keys == list(sam), name
            assert list(record["attributes"]) == list(sam["attributes"]), name


def test_oversize_body_is_just_over_the_limit() -> None:
    records = load("sqs-oversize.json")
    sizes = [len(r["body"].encode()) for r in records]
    big = max(range(len(records)), key=sizes.__getitem__)
    assert MAX_BODY_BYTES < sizes[big] <= SQS_MAX_MESSAGE_BYTES
    assert outcome(records[big]["body"]) == ErrorCode.BODY_TOO_LARGE
    assert all(outcome(r["body"]) == "ok" for i, r in enumerate(records) if i != big)
