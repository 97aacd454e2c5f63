"""The worker's AWS clients: what it uses (`Clients`), and how the command builds them.

A worker has no other region to fall back on, so its clients retry more than the
distributor's; their connection pools are sized for the worker's I/O threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from orchestrator.worker.config import WorkerSettings

IO_THREADS = 16
# A worker has no other region to fall back on: more retries than the distributor's clients.
# SQS's read time-out must outlast a 20-second long poll.
_RETRIES: Any = {"mode": "standard", "max_attempts": 4}
SQS_CONFIG = Config(
    connect_timeout=3, read_timeout=30, retries=_RETRIES, max_pool_connections=IO_THREADS + 4
)
DYNAMODB_CONFIG = Config(
    connect_timeout=3, read_timeout=10, retries=_RETRIES, max_pool_connections=IO_THREADS + 4
)
S3_CONFIG = Config(
    connect_timeout=3, read_timeout=60, retries=_RETRIES, max_pool_connections=IO_THREADS + 4
)
SNS_CONFIG = Config(connect_timeout=3, read_timeout=10, retries=_RETRIES)


@dataclass(frozen=True)
class Clients:
    """The AWS clients a worker uses; built by the caller (`build_clients`), injected."""

    sqs: Any
    """The queue's region: the work queue and its dead-letter queue."""
    dynamodb: Any
    """The table's region (primary): request records and presence."""
    s3: Any
    """The queue's region: inputs and large results."""
    sns_for_region: Callable[[str], Any]
    """An SNS client for a topic's region (topics may live anywhere)."""


def build_clients(session: Any, settings: WorkerSettings) -> Clients:
    """The worker's clients from a boto3 session: SQS and S3 in the queue's region, DynamoDB
    in the table's, SNS per topic region on first use. botocore reads ``AWS_ENDPOINT_URL``
    and ``AWS_ENDPOINT_URL_<SERVICE>`` itself."""
    return Clients(
        sqs=session.client("sqs", region_name=settings.region, config=SQS_CONFIG),
        dynamodb=session.client(
            "dynamodb", region_name=settings.table_region, config=DYNAMODB_CONFIG
        ),
        s3=session.client("s3", region_name=settings.region, config=S3_CONFIG),
        sns_for_region=lambda region: session.client("sns", region_name=region, config=SNS_CONFIG),
    )
