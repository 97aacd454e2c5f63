"""Where a result goes: inline in the record when small, else an S3 object the record points to.

A result is JSON: whatever ``predict`` returned for the request, encoded with ``json.dumps``.
Up to ``INLINE_RESULT_MAX_BYTES`` (default 32 KiB: well inside DynamoDB's 400 KB item, and
small enough to travel in the SNS notification too) it is stored in the record's ``result``
attribute; above, it is written to ``s3://RESULTS_BUCKET/RESULTS_PREFIX<request_id>.json``
and the record's ``result_location`` holds that URL. A retried attempt writes the same key;
the record (fenced) says which attempt's result counts, and the key is only ever written by
the worker holding the current lease (`orchestrator.worker.runtime` renews it first when the
batch has outlived it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestrator.core.errors import AWS_ERRORS, error_code
from orchestrator.worker.exceptions import FailureCode, PermanentError, RetryableError


@dataclass(frozen=True, slots=True)
class StoredResult:
    inline: str | None = None
    location: str | None = None


def encode(result: Any) -> str:
    """The result as JSON text; `PermanentError` (``RESULT_NOT_SERIALIZABLE``) if it is not."""
    try:
        return json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PermanentError(
            f"result is not JSON-serializable: {exc}", FailureCode.RESULT_NOT_SERIALIZABLE
        ) from exc


class ResultStore:
    def __init__(
        self, s3_client: Any, bucket: str | None, prefix: str, inline_max_bytes: int
    ) -> None:
        self._s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix
        self.inline_max_bytes = inline_max_bytes

    def key(self, request_id: str) -> str:
        return f"{self.prefix}{request_id}.json"

    def place(self, request_id: str, text: str) -> StoredResult:
        """Keep `text` inline or upload it (module docstring).

        Raises `PermanentError` (``RESULT_TOO_LARGE``) when it is too large and there is no
        bucket, `RetryableError` (``RESULT_UPLOAD_FAILED``) when the upload fails.
        """
        data = text.encode("utf-8")
        if len(data) <= self.inline_max_bytes:
            return StoredResult(inline=text)
        if not self.bucket or self._s3 is None:
            raise PermanentError(
                f"result is {len(data)} bytes, over INLINE_RESULT_MAX_BYTES "
                f"({self.inline_max_bytes}), and RESULTS_BUCKET is not set",
                FailureCode.RESULT_TOO_LARGE,
            )
        key = self.key(request_id)
        try:
            self._s3.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType="application/json"
            )
        except AWS_ERRORS as exc:
            raise RetryableError(
                f"result upload to s3://{self.bucket}/{key} failed: {error_code(exc)}",
                FailureCode.RESULT_UPLOAD_FAILED,
            ) from exc
        return StoredResult(location=f"s3://{self.bucket}/{key}")
