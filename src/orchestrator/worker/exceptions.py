"""The worker's errors: the two a model raises or returns, and the runtime's own.

A model signals a failed request with `RetryableError` (try again later, on this or another
worker) or `PermanentError` (the input is bad: retrying cannot help). Either may be raised from
``predict`` (then it applies to the whole batch) or returned in the request's place in the
results list (then it applies to that request only). Any other exception counts as retryable
with the code ``MODEL_ERROR``, up to ``--max-attempts``.
"""

from __future__ import annotations

from enum import StrEnum

from orchestrator.core.errors import OrchestratorError


class FailureCode(StrEnum):
    """Stable `error_code` values the worker writes to the record and the dead letter."""

    RETRYABLE = "RETRYABLE"
    """A `RetryableError` without its own code."""
    PERMANENT = "PERMANENT"
    """A `PermanentError` without its own code."""
    MODEL_ERROR = "MODEL_ERROR"
    """The model raised (or returned) an exception that is neither of the two."""
    INVOCATION_TIMEOUT = "INVOCATION_TIMEOUT"
    """``predict`` did not return within ``--invocation-timeout``."""
    ATTEMPTS_EXHAUSTED = "ATTEMPTS_EXHAUSTED"
    """Claimed more than ``--max-attempts`` times without a result (workers died running it)."""
    REQUEST_EXPIRED = "REQUEST_EXPIRED"
    """Older than its deadline when it reached a worker (status EXPIRED, never run)."""
    RESULT_NOT_SERIALIZABLE = "RESULT_NOT_SERIALIZABLE"
    RESULT_TOO_LARGE = "RESULT_TOO_LARGE"
    """Larger than ``INLINE_RESULT_MAX_BYTES`` with no ``RESULTS_BUCKET`` to put it in."""
    RESULT_UPLOAD_FAILED = "RESULT_UPLOAD_FAILED"
    INPUT_NOT_FOUND = "INPUT_NOT_FOUND"
    INPUT_UNREADABLE = "INPUT_UNREADABLE"
    INPUT_SCHEME_NOT_ALLOWED = "INPUT_SCHEME_NOT_ALLOWED"
    INVALID_METADATA = "INVALID_METADATA"


class InferenceError(OrchestratorError):
    """Base of the two errors a model uses to fail a request; `code` goes on the record."""

    default_code = FailureCode.MODEL_ERROR
    retryable = True

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message or type(self).__name__)
        self.code = code or str(self.default_code)
        self.message = message or type(self).__name__


class RetryableError(InferenceError):
    """The request may succeed later (a busy dependency, an out-of-memory on a big batch).

    It goes back to the queue with exponential backoff and jitter until ``--max-attempts``."""

    default_code = FailureCode.RETRYABLE
    retryable = True


class PermanentError(InferenceError):
    """The request can never succeed (bad input): failed at once, dead-lettered."""

    default_code = FailureCode.PERMANENT
    retryable = False


class WorkerConfigError(OrchestratorError):
    """A flag or environment variable is missing or invalid; the message names it."""


class HandlerLoadError(OrchestratorError):
    """``--handler`` could not be imported, or is neither a function nor a model class."""
