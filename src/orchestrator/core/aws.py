"""AWS client construction: one client per region, built by the caller, never at import.

botocore itself reads `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SQS` and
`AWS_ENDPOINT_URL_DYNAMODB`, so the same code runs against AWS, moto or LocalStack.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.config import Config

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
    session: Any, regions: Iterable[str], config: Config = CLIENT_CONFIG
) -> dict[str, Any]:
    """One SQS client per region (a client signs for, and talks to, a single region)."""
    return {region: session.client("sqs", region_name=region, config=config) for region in regions}


def dynamodb_client(session: Any, region: str, config: Config = CLIENT_CONFIG) -> Any:
    return session.client("dynamodb", region_name=region, config=config)
