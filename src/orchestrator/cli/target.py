"""Where a command's AWS calls go: endpoint, region and credentials, settled before any call.

- An endpoint comes from ``--endpoint-url``, else the local stack file, else — for a queue URL
  that is not on AWS (``http://127.0.0.1:PORT/...``, a local emulator) — that URL's own
  ``scheme://host:port``: sending such a URL to AWS can only fail, and did so with no hint.
  botocore's ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_SQS`` still win over a derived endpoint.
- A region must be one AWS has (`flags.region_problem`), wherever it came from.
- A region that contradicts where the queue is — an AWS queue URL names its region, and the
  local stack file says where it put each of its queues — is reported as a mismatch, instead
  of the "queue does not exist" that SQS answers in the wrong region.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from botocore.config import Config
from botocore.exceptions import BotoCoreError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from orchestrator.core.errors import OrchestratorError, one_line
from orchestrator.core.regions import region_from_queue_url
from orchestrator.core.stackfile import DEFAULT_REGION, LocalStack

from .flags import region_problem

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

# Credentials used against a local endpoint (moto / LocalStack) when none are configured.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS")


class UsageError(OrchestratorError):
    """Flags (or configuration) that cannot work. Nothing was sent; exit status 2."""

    def __init__(self, message: str, flag: str | None = None) -> None:
        super().__init__(f"{flag}: {message}" if flag else message)
        self.flag = flag


def is_aws_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host.endswith(AWS_HOST_SUFFIXES)


def endpoint_for(queue_url: str, endpoint_url: str | None) -> str | None:
    """The endpoint to give the client for `queue_url` (None: botocore's own choice)."""
    if endpoint_url:
        return endpoint_url
    if any(os.environ.get(name) for name in _ENDPOINT_VARIABLES) or is_aws_url(queue_url):
        return None
    parts = urlsplit(queue_url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def check_region(name: str, source: str) -> str:
    problem = region_problem(name)
    if problem:
        raise UsageError(problem, source)
    return name


def check_queue_region(
    queue_url: str, region: str, source: str, stack: LocalStack | None = None
) -> None:
    """Raise `UsageError` when `region` is not where `queue_url` is, as far as can be known
    without a call."""
    in_url = region_from_queue_url(queue_url)
    if in_url and in_url != region:
        raise UsageError(f"{region} does not match the queue URL, which is in {in_url}", source)
    in_stack = stack.region_of(queue_url) if stack else None
    if stack and in_stack and in_stack != region:
        raise UsageError(
            f"{region} does not match the local stack ({stack.path}), "
            f"which created this queue in {in_stack}",
            source,
        )


def make_session(profile: str | None) -> boto3.Session:
    import boto3

    try:
        return boto3.Session(profile_name=profile) if profile else boto3.Session()
    except BotoCoreError as exc:  # ProfileNotFound and friends
        raise UsageError(one_line(exc), "--profile") from exc


def default_region(session: boto3.Session) -> str:
    """The profile's or environment's region (checked), else us-east-1."""
    if session.region_name:
        return check_region(session.region_name, "the configured default region")
    return DEFAULT_REGION


def _client_kwargs(
    session: boto3.Session, endpoint_url: str | None, read_timeout: float
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "config": Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=read_timeout,
        )
    }
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
        # dummy credentials against a local endpoint, so `make local` needs no AWS account
        if session.get_credentials() is None:
            kwargs.update(LOCAL_CREDENTIALS)
    return kwargs


def sqs_client(
    session: boto3.Session, region: str, endpoint_url: str | None, *, read_timeout: float = 30
) -> SQSClient:
    return session.client(
        "sqs", region_name=region, **_client_kwargs(session, endpoint_url, read_timeout)
    )


def dynamodb_client(
    session: boto3.Session, region: str, endpoint_url: str | None
) -> DynamoDBClient:
    return session.client(
        "dynamodb", region_name=region, **_client_kwargs(session, endpoint_url, 30)
    )


def describe_endpoint(client: Any) -> str:
    """The endpoint a client talks to, for error messages."""
    try:
        return str(client.meta.endpoint_url)
    except AttributeError:
        return "AWS"


def is_unreachable(exc: BaseException) -> bool:
    """True for "the endpoint is not there" errors (as opposed to API errors)."""
    return isinstance(exc, BotoConnectionError | HTTPClientError)
