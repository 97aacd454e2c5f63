"""Malformed input never crashes a batch and is never silently dropped: each kind goes to the
dead-letter queue with a reason naming the field, and its valid neighbours are forwarded."""

from __future__ import annotations

import json

import pytest

from orchestrator.cli.malformed import CASES
from orchestrator.core.request import (
    MAX_BODY_BYTES,
    SQS_MAX_MESSAGE_BYTES,
    ErrorCode,
    InvalidRequestError,
    parse_request,
)
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


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
def test_each_malformed_kind_is_refused_with_its_code_and_the_field_named(case):
    """The whole catalogue against the parser itself (fast); the handler path is below."""
    with pytest.raises(InvalidRequestError) as refused:
        parse_request(case.body("req-bad"))
    assert refused.value.code is case.error_code
    assert case.mention in refused.value.message


def test_every_error_code_for_bad_input_is_exercised_by_the_catalogue():
    # A conflict needs two requests; "no permitted region" is about configuration, not input.
    wanted = set(ErrorCode) - {ErrorCode.PAYLOAD_CONFLICT, ErrorCode.NO_PERMITTED_REGION}
    assert {case.error_code for case in CASES} == wanted


# One case per error code through the whole handler: dead-lettered with its reason, the
# valid neighbours forwarded, nothing retried.
_END_TO_END = [
    next(c for c in CASES if c.error_code is code)
    for code in dict.fromkeys(case.error_code for case in CASES)
]


@pytest.mark.parametrize("case", _END_TO_END, ids=[case.kind for case in _END_TO_END])
def test_malformed_goes_to_the_dlq_with_its_reason_and_neighbours_are_forwarded(aws, app, case):
    bad = record(case.body("req-bad"))
    neighbours = valid_records(3)

    response = app.handle(event(neighbours[0], bad, neighbours[1], neighbours[2]), FakeContext())

    assert response == {"batchItemFailures": []}, "malformed input is acknowledged, not retried"
    (letter,) = aws.dead_letters()
    assert letter.attributes["error_code"] == case.error_code
    assert case.mention in letter.attributes["error_message"]
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
    records = [record(case.body(f"req-{i}")) for i, case in enumerate(CASES[:10])]
    response = app.handle(event(*records), FakeContext())
    assert response == {"batchItemFailures": []}
    assert len(aws.dead_letters()) == 10
