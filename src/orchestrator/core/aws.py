"""AWS client construction: one client per region, built by the caller, never at import.

botocore itself reads `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_DYNAMODB`
(and the other services' variables), so the same code runs against AWS, moto or LocalStack.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from botocore.config import Config

if TYPE_CHECKING:
    from boto3.session import Session
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

# Enough connections for a whole batch in parallel (10 claims, several sends, the DLQ).
MAX_POOL_CONNECTIONS = 16

# Fail fast: a region that does not answer is retried in another region by the distributor,
# which is faster than botocore backing off against the same endpoint.
CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 2},
    max_pool_connections=MAX_POOL_CONNECTIONS,
)


def sqs_clients(
    session: Session, regions: Iterable[str], config: Config = CLIENT_CONFIG
) -> dict[str, SQSClient]:
    """One SQS client per region (a client signs for, and talks to, a single region)."""
    return {region: session.client("sqs", region_name=region, config=config) for region in regions}


def dynamodb_client(
    session: Session, region: str, config: Config = CLIENT_CONFIG
) -> DynamoDBClient:
    return session.client("dynamodb", region_name=region, config=config)
