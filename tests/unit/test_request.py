from __future__ import annotations

import json

import pytest

from orchestrator.core.request import ErrorCode, InvalidRequestError, parse_request
from support.records import request


def test_published_sample_message_is_valid():
    sample = {
        "request_id": "req-3f2a",
        "model_name": "gpt-l-7b",
        "input_data_url": "s3://bucket/inputs/file.json",
        "callback_sns_topic": "arn:aws:sns:us-east-1:123456789012:results",
        "priority": "high",
        "timestamp": "2025-12-02T10:23:00Z",
        "metadata": {"user_id": "user123", "session_id": "session456"},
    }
    parsed = parse_request(json.dumps(sample))
    assert parsed.request.priority == "high"
    assert parsed.request_id == "req-3f2a"


def test_only_three_fields_are_required_and_priority_defaults_to_normal():
    parsed = parse_request('{"request_id":"r1","model_name":"m","input_data_url":"https://h/x"}')
    assert parsed.request.priority == "normal"
    assert parsed.request.metadata == {}
    assert parsed.request.callback_sns_topic is None


def test_unknown_fields_are_kept():
    parsed = parse_request(json.dumps(request("r1", tenant="acme")))
    assert parsed.request.model_extra == {"tenant": "acme"}


def test_payload_hash_ignores_key_order_whitespace_and_timestamp():
    a = request("r1", timestamp="2025-12-02T10:23:00Z")
    b = dict(reversed(list(request("r1", timestamp="2026-01-01T00:00:00+02:00").items())))
    assert (
        parse_request(json.dumps(a)).payload_hash
        == parse_request(json.dumps(b, indent=2)).payload_hash
    )


def test_payload_hash_changes_with_content():
    a = parse_request(json.dumps(request("r1", metadata={"x": 1}))).payload_hash
    b = parse_request(json.dumps(request("r1", metadata={"x": 2}))).payload_hash
    assert a != b


@pytest.mark.parametrize(
    "url", ["s3://my-bucket/a/b.json", "https://example.com/data?x=1", "s3://a.b-c/k"]
)
def test_accepted_urls(url):
    parse_request(json.dumps(request("r1", input_data_url=url)))


def test_errors_carry_code_and_field():
    with pytest.raises(InvalidRequestError) as error:
        parse_request(json.dumps(request("r1", priority="asap")))
    assert error.value.code is ErrorCode.INVALID_FIELD
    assert error.value.field == "priority"
    assert error.value.message.startswith("priority:")
