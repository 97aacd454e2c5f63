"""The package's error hierarchy, and which exceptions count as AWS failures.

Every error the orchestrator raises on purpose derives from `OrchestratorError`. Code that
talks to AWS catches `AWS_ERRORS` — the failures an outage, a throttle or a refusal produce —
and nothing wider: a `TypeError` or `KeyError` is a defect and must surface as one (the
distributor's handler then hands the whole batch back, so no record is lost), never be
mistaken for "region down".
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

AWS_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError)
"""What an AWS call raises when AWS (or the way to it) fails: API errors (`ClientError`:
throttling, access denied, missing resources) and transport errors (`BotoCoreError`:
endpoint connection, read and connect time-outs, credentials, parameter validation)."""


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""


class AwsUnavailableError(OrchestratorError):
    """An AWS dependency failed (after botocore's own retries). The work must be retried."""


def error_code(exc: BaseException) -> str:
    """The AWS error code of a `ClientError` (``ThrottlingException``), else the class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


def is_conditional_check_failure(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) == "ConditionalCheckFailedException"


def one_line(exc: BaseException) -> str:
    """An exception as one line, for logs and CLI errors."""
    return " ".join(str(exc).split()) or type(exc).__name__
