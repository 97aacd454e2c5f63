"""The start-up check of a queue: one GetQueueAttributes call, before anything is sent.

It proves the endpoint answers and the queue exists, and returns the queue's depth, which
the consumer uses to sample the regions fairly. Every failure becomes one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from orchestrator.core.errors import OrchestratorError, error_code, one_line
from orchestrator.core.sqs import QueueDepth, read_depth

from .target import describe_endpoint, is_aws_url, is_unreachable

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


class QueueUnusable(OrchestratorError):
    """The queue cannot be used (unreachable, missing, refused). Exit status 2."""


def check_queue(client: SQSClient, queue_url: str, region: str | None = None) -> QueueDepth | None:
    """The queue's depth; None when reading it is not allowed (a producer may hold only
    sqs:SendMessage, which is enough). Raises `QueueUnusable` with a one-line reason that
    names `region` when given."""
    where = f"{region}: " if region else ""
    try:
        return read_depth(client, queue_url)
    except NoCredentialsError as exc:
        raise QueueUnusable("no AWS credentials found (configure them or pass --profile)") from exc
    except ClientError as exc:
        code = error_code(exc)
        if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
            raise QueueUnusable(
                f"{where}queue does not exist: {queue_url}{_hint(queue_url)}"
            ) from exc
        if "AccessDenied" in code or "Authorization" in code:
            return None
        raise QueueUnusable(f"{where}{queue_url}: {one_line(exc)}") from exc
    except BotoCoreError as exc:
        if is_unreachable(exc):
            suffix = f" ({region})" if region else ""
            raise QueueUnusable(
                f"cannot reach SQS at {describe_endpoint(client)}{suffix}: {one_line(exc)}"
            ) from exc
        raise QueueUnusable(f"{where}{one_line(exc)}") from exc


def _hint(queue_url: str) -> str:
    # A local emulator keeps one set of queues per region and its URLs do not name the region,
    # so the usual cause is a region other than the one the queue was created in.
    if is_aws_url(queue_url):
        return ""
    return " (a local endpoint keeps separate queues per region: is the region right?)"
