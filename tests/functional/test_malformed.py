"""Malformed input never crashes a batch and is never silently dropped: each kind goes to the
dead-letter queue with a reason naming the field, and its valid neighbours are forwarded."""

from __future__ import annotations

import json

import pytest

from orchestrator.core.request import MAX_BODY_BYTES, SQS_MAX_MESSAGE_BYTES
from support.records import FakeContext, event, record, request, valid_records


def body(**changes):
    doc = request("req-bad")
    for key, value in changes.items():
        if value is ...:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc)


OVERSIZE = body(metadata={}, padding="x" * (MAX_BODY_BYTES + 1))


def _largest_sqs_body() -> str:
    """A body of exactly 1 MiB: SQS takes it, but with the error attributes it no longer fits."""
    text = body(metadata={}, padding="")
    return text[:-2] + "x" * (SQS_MAX_MESSAGE_BYTES - len(text.encode())) + '"}'


# (kind, body, error_code, text the error message must contain)
MALFORMED = [
    ("not json", "this is not json", "INVALID_JSON", "not JSON"),
    ("empty body", "", "INVALID_JSON", "not JSON"),
    ("truncated json", body()[:-5], "INVALID_JSON", "not JSON"),
    ("json array", "[1, 2, 3]", "NOT_AN_OBJECT", "object"),
    ("json string", '"hello"', "NOT_AN_OBJECT", "object"),
    ("json null", "null", "NOT_AN_OBJECT", "null"),
    ("json number", "42", "NOT_AN_OBJECT", "object"),
    ("NaN literal", '{"request_id": NaN}', "INVALID_JSON", "NaN"),
    ("duplicate keys", '{"request_id": "a", "request_id": "b"}', "INVALID_JSON", "request_id"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, "INVALID_JSON", "JSON"),
    ("lone surrogate", body(metadata={"note": "\ud800"}), "BAD_ENCODING", "surrogate"),
    ("oversize body", OVERSIZE, "BODY_TOO_LARGE", "bytes"),
    ("missing request_id", body(request_id=...), "MISSING_FIELD", "request_id"),
    ("missing model_name", body(model_name=...), "MISSING_FIELD", "model_name"),
    ("missing input_data_url", body(input_data_url=...), "MISSING_FIELD", "input_data_url"),
    ("empty request_id", body(request_id=""), "INVALID_FIELD", "request_id"),
    ("numeric request_id", body(request_id=12345), "INVALID_FIELD", "request_id"),
    ("request_id too long", body(request_id="r" * 129), "INVALID_FIELD", "request_id"),
    ("request_id with space", body(request_id="req 1"), "INVALID_FIELD", "request_id"),
    ("request_id with NUL", body(request_id="req\u00001"), "INVALID_FIELD", "request_id"),
    ("request_id with slash", body(request_id="../etc"), "INVALID_FIELD", "request_id"),
    ("model_name not a string", body(model_name=["gpt"]), "INVALID_FIELD", "model_name"),
    ("model_name empty", body(model_name=""), "INVALID_FIELD", "model_name"),
    ("url ftp scheme", body(input_data_url="ftp://host/file"), "INVALID_FIELD", "input_data_url"),
    ("url plain http", body(input_data_url="http://host/file"), "INVALID_FIELD", "input_data_url"),
    ("url without host", body(input_data_url="https:///file"), "INVALID_FIELD", "input_data_url"),
    ("s3 url without key", body(input_data_url="s3://bucket"), "INVALID_FIELD", "input_data_url"),
    (
        "url too long",
        body(input_data_url="s3://bucket/" + "k" * 2100),
        "INVALID_FIELD",
        "input_data_url",
    ),
    (
        "callback not an arn",
        body(callback_sns_topic="results"),
        "INVALID_FIELD",
        "callback_sns_topic",
    ),
    (
        "callback sqs arn",
        body(callback_sns_topic="arn:aws:sqs:us-east-1:123456789012:q"),
        "INVALID_FIELD",
        "callback_sns_topic",
    ),
    ("priority unknown", body(priority="urgent"), "INVALID_FIELD", "priority"),
    ("priority upper case", body(priority="HIGH"), "INVALID_FIELD", "priority"),
    ("priority number", body(priority=1), "INVALID_FIELD", "priority"),
    ("timestamp not a date", body(timestamp="yesterday"), "INVALID_FIELD", "timestamp"),
    ("timestamp without zone", body(timestamp="2025-12-02T10:23:00"), "INVALID_FIELD", "timestamp"),
    ("metadata a list", body(metadata=["a"]), "INVALID_FIELD", "metadata"),
    ("metadata a string", body(metadata="user=1"), "INVALID_FIELD", "metadata"),
    ("metadata too large", body(metadata={"blob": "x" * 20_000}), "INVALID_FIELD", "metadata"),
]


def test_there_are_at_least_25_kinds():
    assert len({kind for kind, *_ in MALFORMED}) >= 25


@pytest.mark.parametrize(
    ("kind", "text", "code", "mention"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_goes_to_the_dlq_with_its_reason_and_neighbours_are_forwarded(
    aws, app, kind, text, code, mention
):
    bad = record(text)
    neighbours = valid_records(3)

    response = app.handle(event(neighbours[0], bad, neighbours[1], neighbours[2]), FakeContext())

    assert response == {"batchItemFailures": []}, "malformed input is acknowledged, not retried"
    (letter,) = aws.dead_letters()
    assert letter.attributes["error_code"] == code
    assert mention in letter.attributes["error_message"]
    assert letter.attributes["origin_message_id"] == bad["messageId"]
    forwarded = [m for msgs in aws.drain_all().values() for m in msgs]
    assert sorted(m.attributes["origin_message_id"] for m in forwarded) == sorted(
        n["messageId"] for n in neighbours
    )


def test_dead_letter_keeps_the_body_and_the_readable_request_id(aws, app):
    text = body(priority="urgent")
    app.handle(event(record(text)), FakeContext())
    (letter,) = aws.dead_letters()
    assert letter.body == text
    assert letter.attributes["request_id"] == "req-bad"


def test_oversize_dead_letter_is_cut_to_fit_and_says_so(aws, app):
    largest = _largest_sqs_body()
    assert len(largest.encode()) == SQS_MAX_MESSAGE_BYTES
    app.handle(event(record(largest)), FakeContext())
    (letter,) = aws.dead_letters()
    assert letter.attributes["error_code"] == "BODY_TOO_LARGE"
    assert letter.attributes["body_truncated"] == "true"
    assert int(letter.attributes["body_bytes"]) == SQS_MAX_MESSAGE_BYTES
    assert largest.startswith(letter.body)


def test_a_batch_of_only_malformed_records_is_all_dead_lettered(aws, app):
    records = [record(text) for _, text, *_ in MALFORMED[:10]]
    response = app.handle(event(*records), FakeContext())
    assert response == {"batchItemFailures": []}
    assert len(aws.dead_letters()) == 10
