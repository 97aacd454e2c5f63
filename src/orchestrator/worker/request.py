"""What a model sees: one `Request` per message of the batch, and how it reads its input.

`Request.read_input()` fetches ``input_data_url``: ``s3://`` through the worker's S3 client
(built from the worker's session, so ``AWS_ENDPOINT_URL_S3`` and the pod's role apply), and
``https://`` only when the worker runs with ``--allow-https-input``. Failures arrive as the
worker's two error types, so a model can put them straight into its results:

- the object does not exist, access is refused, the scheme is not allowed → `PermanentError`
  (``INPUT_NOT_FOUND``, ``INPUT_UNREADABLE``, ``INPUT_SCHEME_NOT_ALLOWED``);
- throttling, time-outs, the endpoint unreachable → `RetryableError` (``INPUT_UNREADABLE``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from orchestrator.core.errors import AWS_ERRORS, error_code
from orchestrator.worker.exceptions import FailureCode, PermanentError, RetryableError

HTTPS_TIMEOUT_SECONDS = 30.0
# ClientError codes meaning the input will never be readable by retrying.
_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_REFUSED = frozenset({"AccessDenied", "403", "InvalidObjectState", "AllAccessDisabled"})


class InputReader:
    """Fetches input URLs for the requests of one worker."""

    def __init__(self, s3_client: Any, *, allow_https: bool = False) -> None:
        self._s3 = s3_client
        self.allow_https = allow_https

    def read(self, url: str) -> bytes:
        parts = urlsplit(url)
        if parts.scheme == "s3":
            return self._read_s3(parts.netloc, parts.path.lstrip("/"), url)
        if parts.scheme == "https" and self.allow_https:
            return self._read_https(url)
        raise PermanentError(
            f"input {url!r}: scheme {parts.scheme or '(none)'!r} is not allowed"
            + ("" if parts.scheme != "https" else " (start the worker with --allow-https-input)"),
            FailureCode.INPUT_SCHEME_NOT_ALLOWED,
        )

    def _read_s3(self, bucket: str, key: str, url: str) -> bytes:
        try:
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()
        except AWS_ERRORS as exc:
            code = error_code(exc)
            if isinstance(exc, ClientError) and code in _NOT_FOUND:
                raise PermanentError(f"input {url} not found", FailureCode.INPUT_NOT_FOUND) from exc
            if isinstance(exc, ClientError) and code in _REFUSED:
                raise PermanentError(
                    f"input {url} unreadable: {code}", FailureCode.INPUT_UNREADABLE
                ) from exc
            raise RetryableError(
                f"input {url} unreadable for now: {code}", FailureCode.INPUT_UNREADABLE
            ) from exc

    @staticmethod
    def _read_https(url: str) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=HTTPS_TIMEOUT_SECONDS) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise PermanentError(
                    f"input {url}: HTTP {exc.code}",
                    FailureCode.INPUT_NOT_FOUND
                    if exc.code == 404
                    else FailureCode.INPUT_UNREADABLE,
                ) from exc
            raise RetryableError(
                f"input {url}: HTTP {exc.code}", FailureCode.INPUT_UNREADABLE
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise RetryableError(f"input {url}: {exc}", FailureCode.INPUT_UNREADABLE) from exc


@dataclass(frozen=True, slots=True, eq=False)
class Request:
    """One request of a batch, as the model sees it.

    `document` is the whole request body (fields the client added beyond the contract are
    there too); `attributes` are the client's own SQS message attributes (String and Number
    values as text, Binary as bytes), unpacked however the distributor carried them.
    """

    request_id: str
    model_name: str
    priority: str
    metadata: Mapping[str, Any]
    input_data_url: str
    attributes: Mapping[str, str | bytes] = field(default_factory=dict)
    document: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    """1 on the first claim; higher on retries and after a worker died running it."""
    deadline_at: float | None = None
    """Epoch seconds after which the request would have expired (None: no deadline)."""
    _reader: InputReader | None = field(default=None, repr=False)

    def read_input(self) -> bytes:
        """The bytes at ``input_data_url`` (module docstring: which errors it raises)."""
        if self._reader is None:
            raise PermanentError("this request has no input reader", FailureCode.INPUT_UNREADABLE)
        return self._reader.read(self.input_data_url)

    def read_json(self) -> Any:
        """`read_input()` parsed as JSON; invalid JSON is a `PermanentError`."""
        raw = self.read_input()
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise PermanentError(
                f"input {self.input_data_url} is not JSON: {exc}", FailureCode.INPUT_UNREADABLE
            ) from exc
