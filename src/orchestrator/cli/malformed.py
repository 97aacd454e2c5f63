"""The catalogue of malformed requests: one of each thing a client can get wrong.

Used by `orchestrator send --malformed N`, the local demo's traffic, the sample events and
the tests, so every one of them exercises the same cases. Each case builds its body around a
request id (where the mistake leaves one readable) and says which `ErrorCode` the distributor
must dead-letter it with and a word the error message must contain (the field it names).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.core.request import MAX_BODY_BYTES, MAX_METADATA_BYTES, ErrorCode

MISSING = object()
"""A field value meaning "leave the field out"."""


@dataclass(frozen=True, slots=True)
class MalformedCase:
    kind: str
    error_code: ErrorCode
    mention: str
    """Text the dead letter's error_message contains (usually the field's name)."""
    make: Callable[[str], str]
    """request id -> body."""

    def body(self, request_id: str = "req-malformed") -> str:
        return self.make(request_id)


def valid_document(request_id: str) -> dict[str, Any]:
    """A valid request in the published format, the base every case changes one thing of."""
    return {
        "request_id": request_id,
        "model_name": "gpt-l-7b",
        "input_data_url": f"s3://inference-inputs-dev/inputs/{request_id}.json",
        "callback_sns_topic": "arn:aws:sns:us-east-1:123456789012:inference-results-dev",
        "priority": "normal",
        "timestamp": "2025-12-02T10:23:00.000Z",
        "metadata": {"user_id": "user123"},
    }


def _compact(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _changed(**changes: Any) -> Callable[[str], str]:
    def make(request_id: str) -> str:
        document = valid_document(request_id)
        for key, value in changes.items():
            if value is MISSING:
                document.pop(key, None)
            else:
                document[key] = value
        return _compact(document)

    return make


def _text(text: str) -> Callable[[str], str]:
    return lambda _request_id: text


def _truncated(request_id: str) -> str:
    return _compact(valid_document(request_id))[:-20]


def _duplicate_key(request_id: str) -> str:
    return _compact(valid_document(request_id))[:-1] + f',"request_id":"{request_id}-again"}}'


def _nan(request_id: str) -> str:
    return _compact(valid_document(request_id))[:-1] + ',"score":NaN}'


def _lone_surrogate(request_id: str) -> str:
    # json.dumps escapes it as \ud800, which is valid JSON text but not encodable UTF-8.
    return json.dumps({**valid_document(request_id), "metadata": {"note": "\ud800"}})


def _oversize(request_id: str) -> str:
    return _compact({**valid_document(request_id), "padding": "x" * (MAX_BODY_BYTES + 1)})


_F = ErrorCode.INVALID_FIELD
CASES: tuple[MalformedCase, ...] = (
    MalformedCase("not json", ErrorCode.INVALID_JSON, "not JSON", _text("please run my model")),
    MalformedCase("empty body", ErrorCode.INVALID_JSON, "not JSON", _text("")),
    MalformedCase("truncated json", ErrorCode.INVALID_JSON, "not JSON", _truncated),
    MalformedCase(
        "json array", ErrorCode.NOT_AN_OBJECT, "object", _text('["not", "a", "request"]')
    ),
    MalformedCase("json string", ErrorCode.NOT_AN_OBJECT, "object", _text('"hello"')),
    MalformedCase("json null", ErrorCode.NOT_AN_OBJECT, "null", _text("null")),
    MalformedCase("json number", ErrorCode.NOT_AN_OBJECT, "object", _text("42")),
    MalformedCase("NaN literal", ErrorCode.INVALID_JSON, "NaN", _nan),
    MalformedCase("duplicate keys", ErrorCode.INVALID_JSON, "request_id", _duplicate_key),
    MalformedCase(
        "deep nesting", ErrorCode.INVALID_JSON, "JSON", _text("[" * 100_000 + "]" * 100_000)
    ),
    MalformedCase("lone surrogate", ErrorCode.BAD_ENCODING, "surrogate", _lone_surrogate),
    MalformedCase("oversize body", ErrorCode.BODY_TOO_LARGE, "bytes", _oversize),
    MalformedCase(
        "missing request_id", ErrorCode.MISSING_FIELD, "request_id", _changed(request_id=MISSING)
    ),
    MalformedCase(
        "missing model_name", ErrorCode.MISSING_FIELD, "model_name", _changed(model_name=MISSING)
    ),
    MalformedCase(
        "missing input_data_url",
        ErrorCode.MISSING_FIELD,
        "input_data_url",
        _changed(input_data_url=MISSING),
    ),
    MalformedCase("empty request_id", _F, "request_id", _changed(request_id="")),
    MalformedCase("numeric request_id", _F, "request_id", _changed(request_id=12345)),
    MalformedCase("request_id too long", _F, "request_id", _changed(request_id="r" * 129)),
    MalformedCase("request_id with space", _F, "request_id", _changed(request_id="req 1")),
    MalformedCase("request_id with NUL", _F, "request_id", _changed(request_id="req\u00001")),
    MalformedCase("request_id with slash", _F, "request_id", _changed(request_id="../etc")),
    MalformedCase("model_name not a string", _F, "model_name", _changed(model_name=["gpt"])),
    MalformedCase("model_name empty", _F, "model_name", _changed(model_name="")),
    MalformedCase(
        "url ftp scheme", _F, "input_data_url", _changed(input_data_url="ftp://host/file")
    ),
    MalformedCase(
        "url plain http", _F, "input_data_url", _changed(input_data_url="http://host/file")
    ),
    MalformedCase(
        "url without host", _F, "input_data_url", _changed(input_data_url="https:///file")
    ),
    MalformedCase(
        "s3 url without key", _F, "input_data_url", _changed(input_data_url="s3://bucket")
    ),
    MalformedCase(
        "url too long",
        _F,
        "input_data_url",
        _changed(input_data_url="s3://bucket/" + "k" * 2100),
    ),
    MalformedCase(
        "callback not an arn", _F, "callback_sns_topic", _changed(callback_sns_topic="results")
    ),
    MalformedCase(
        "callback sqs arn",
        _F,
        "callback_sns_topic",
        _changed(callback_sns_topic="arn:aws:sqs:us-east-1:123456789012:q"),
    ),
    MalformedCase("priority unknown", _F, "priority", _changed(priority="urgent")),
    MalformedCase("priority upper case", _F, "priority", _changed(priority="HIGH")),
    MalformedCase("priority number", _F, "priority", _changed(priority=1)),
    MalformedCase("timestamp not a date", _F, "timestamp", _changed(timestamp="yesterday")),
    MalformedCase(
        "timestamp without zone", _F, "timestamp", _changed(timestamp="2025-12-02T10:23:00")
    ),
    MalformedCase("metadata a list", _F, "metadata", _changed(metadata=["a"])),
    MalformedCase("metadata a string", _F, "metadata", _changed(metadata="user=1")),
    MalformedCase(
        "metadata too large",
        _F,
        "metadata",
        _changed(metadata={"blob": "x" * (MAX_METADATA_BYTES + 1)}),
    ),
    MalformedCase("allowed_regions empty", _F, "allowed_regions", _changed(allowed_regions=[])),
    MalformedCase(
        "allowed_regions not a region",
        _F,
        "allowed_regions",
        _changed(allowed_regions=["mars-central"]),
    ),
)

BY_KIND = {case.kind: case for case in CASES}

# The cases traffic generators send: not the megabyte bodies or the deep nesting (cheap to
# keep out), and not the empty body, which real SQS refuses to enqueue at all (moto takes it).
TRAFFIC_KINDS = tuple(
    case.kind for case in CASES if case.kind not in ("deep nesting", "oversize body", "empty body")
)


def malformed_body(index: int, request_id: str) -> tuple[MalformedCase, str]:
    """The index-th traffic case (kinds cycle) and its body around `request_id`."""
    case = BY_KIND[TRAFFIC_KINDS[index % len(TRAFFIC_KINDS)]]
    return case, case.body(request_id)
