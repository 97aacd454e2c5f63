"""The inference request contract: what a client may put on the master queue.

`parse_request(body)` either returns a `ParsedRequest` (the validated model, the raw body to
forward byte-for-byte, and the payload hash used for conflict detection) or raises
`InvalidRequestError` carrying a stable `error_code` and a message that names the field.

Limits (documented in docs/message-format.md):
- body: UTF-8 JSON object, at most `MAX_BODY_BYTES` (1 MiB less 2 KiB kept for the routing
  attributes the distributor adds when forwarding);
- request_id: 1-128 characters from ``A-Z a-z 0-9 . _ : -``, starting with a letter or digit;
- model_name: 1-256 characters from ``A-Z a-z 0-9 . _ : / @ + -``, starting with a letter or digit;
- input_data_url: ``s3://bucket/key`` or ``https://host/...``, at most 2048 characters;
- callback_sns_topic: an SNS topic ARN, or absent/null;
- priority: ``high`` | ``normal`` | ``low`` (default ``normal``);
- timestamp: ISO-8601 date-time with a time zone, or absent/null;
- metadata: a JSON object of at most 16 KiB (compact JSON), default ``{}``;
- allowed_regions: a non-empty list of distinct AWS region names the request may run in
  (data residency), or absent/null for no restriction;
- any other top-level field is allowed and forwarded unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.core.regions import is_region_name

SQS_MAX_MESSAGE_BYTES = 1_048_576
ROUTING_ATTRIBUTE_RESERVE_BYTES = 2_048
MAX_BODY_BYTES = SQS_MAX_MESSAGE_BYTES - ROUTING_ATTRIBUTE_RESERVE_BYTES
MAX_METADATA_BYTES = 16_384
MAX_URL_LENGTH = 2_048

REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+\-]{0,255}$"
SNS_TOPIC_ARN_PATTERN = (
    r"^arn:aws[a-z\-]*:sns:[a-z]{2}(-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_\-]{1,256}(\.fifo)?$"
)
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
# Fields excluded from the payload hash: the send time differs between a client's retries of
# the same request, so it must not turn a retry into a conflict.
_HASH_EXCLUDED_FIELDS = frozenset({"timestamp"})

Priority = Literal["high", "normal", "low"]


class ErrorCode(StrEnum):
    """Stable reasons put on dead-lettered messages (attribute ``error_code``)."""

    INVALID_JSON = "INVALID_JSON"
    NOT_AN_OBJECT = "NOT_AN_OBJECT"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    BAD_ENCODING = "BAD_ENCODING"
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_FIELD = "INVALID_FIELD"
    PAYLOAD_CONFLICT = "PAYLOAD_CONFLICT"
    NO_PERMITTED_REGION = "NO_PERMITTED_REGION"
    """Valid, but no region both serves its model and is in its `allowed_regions`."""


class InvalidRequestError(ValueError):
    """A message that can never become a valid request. Retrying it cannot help."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


class InferenceRequest(BaseModel):
    """One asynchronous inference request, as a client sends it."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    request_id: str = Field(pattern=REQUEST_ID_PATTERN)
    model_name: str = Field(pattern=MODEL_NAME_PATTERN)
    input_data_url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    callback_sns_topic: str | None = Field(default=None, pattern=SNS_TOPIC_ARN_PATTERN)
    priority: Priority = "normal"
    timestamp: AwareDatetime | None = Field(default=None, strict=False)
    metadata: dict[str, Any] = Field(default_factory=dict)
    allowed_regions: list[str] | None = Field(default=None, min_length=1, max_length=32)

    @field_validator("allowed_regions")
    @classmethod
    def _region_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for region in value:
            if not is_region_name(region):
                raise ValueError(f"{region!r} is not an AWS region name")
        if len(set(value)) != len(value):
            raise ValueError("lists a region twice")
        return value

    @field_validator("input_data_url")
    @classmethod
    def _url_scheme_and_host(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("s3", "https"):
            raise ValueError("scheme must be s3:// or https://")
        if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
            raise ValueError("must not contain white space or control characters")
        if parts.scheme == "s3":
            if not _S3_BUCKET.match(parts.netloc):
                raise ValueError("s3 URL needs a valid bucket name")
            if len(parts.path) <= 1:
                raise ValueError("s3 URL needs an object key")
        elif not parts.hostname:
            raise ValueError("https URL needs a host")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
        return value


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A valid request together with what the distributor needs to move it."""

    request: InferenceRequest
    body: str
    payload_hash: str

    @property
    def request_id(self) -> str:
        return self.request.request_id


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise InvalidRequestError(ErrorCode.INVALID_JSON, f"duplicate key {key!r}", key)
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise InvalidRequestError(ErrorCode.INVALID_JSON, f"{name} is not valid JSON")


def payload_hash(document: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of everything but the send time."""
    content = {k: v for k, v in document.items() if k not in _HASH_EXCLUDED_FIELDS}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _decode(body: str) -> dict[str, Any]:
    size = len(body.encode("utf-8", errors="surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise InvalidRequestError(
            ErrorCode.BODY_TOO_LARGE,
            f"body is {size} bytes; the limit is {MAX_BODY_BYTES} "
            f"(1 MiB less {ROUTING_ATTRIBUTE_RESERVE_BYTES} bytes for routing attributes)",
        )
    try:
        document = json.loads(
            body, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except InvalidRequestError:
        raise
    except RecursionError as exc:
        raise InvalidRequestError(ErrorCode.INVALID_JSON, "JSON nested too deeply") from exc
    except json.JSONDecodeError as exc:
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise InvalidRequestError(ErrorCode.INVALID_JSON, f"body is not JSON: {detail}") from exc
    if not isinstance(document, dict):
        kind = "null" if document is None else type(document).__name__
        raise InvalidRequestError(
            ErrorCode.NOT_AN_OBJECT, f"body must be a JSON object, got {kind}"
        )
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            ErrorCode.BAD_ENCODING, "body contains an unpaired UTF-16 surrogate escape"
        ) from exc
    return document


# What a pattern means, in words, for the fields validated by a regular expression.
_PATTERN_RULES = {
    "request_id": "must be 1-128 characters from A-Z a-z 0-9 . _ : - "
    "starting with a letter or digit",
    "model_name": "must be 1-256 characters from A-Z a-z 0-9 . _ : / @ + - "
    "starting with a letter or digit",
    "callback_sns_topic": "must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)",
}


def _field_error(exc: ValidationError) -> InvalidRequestError:
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "missing":
        return InvalidRequestError(ErrorCode.MISSING_FIELD, f"{field}: field required", field)
    if first["type"] == "string_pattern_mismatch" and field in _PATTERN_RULES:
        return InvalidRequestError(
            ErrorCode.INVALID_FIELD, f"{field}: {_PATTERN_RULES[field]}", field
        )
    message = first["msg"].removeprefix("Value error, ")
    return InvalidRequestError(ErrorCode.INVALID_FIELD, f"{field}: {message}", field)


def parse_request(body: str) -> ParsedRequest:
    """Validate one master-queue message body; raise `InvalidRequestError` if it is not one."""
    document = _decode(body)
    try:
        request = InferenceRequest.model_validate(document)
    except ValidationError as exc:
        raise _field_error(exc) from exc
    return ParsedRequest(request=request, body=body, payload_hash=payload_hash(document))


def readable_request_id(body: str) -> str | None:
    """The request id of a body that may be malformed, when one can be read (for telling the
    sender which request a dead letter was); None when there is none worth showing."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(document, dict):
        value = document.get("request_id")
        if isinstance(value, str) and 0 < len(value) <= 256 and value.isprintable():
            return value
    return None
