"""AWS region names: the one pattern, and the check made before any call uses a region.

A name that does not look like a region (``mars-central-9`` does; ``us-east`` does not) is
refused here. Whether a well-formed name is a region that exists is AWS's answer: botocore's
endpoint data knows the partitions' regions, which `known_region` consults.
"""

from __future__ import annotations

import re
from functools import lru_cache

REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d$"
_REGION = re.compile(REGION_PATTERN)
_SQS_HOST_REGION = re.compile(r"^sqs[.-]([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com", re.IGNORECASE)


def is_region_name(name: object) -> bool:
    """True for a string shaped like an AWS region name (``us-west-2``)."""
    return isinstance(name, str) and bool(_REGION.match(name))


@lru_cache(maxsize=1)
def _known_regions() -> frozenset[str]:
    import botocore.session

    session = botocore.session.get_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("sqs", partition_name=partition))
    return frozenset(regions)


def known_region(name: str) -> bool:
    """True when botocore's endpoint data lists `name` as an SQS region of some partition."""
    return name in _known_regions()


def region_from_queue_url(url: str) -> str | None:
    """``https://sqs.us-west-2.amazonaws.com/123/q`` -> ``us-west-2``; None for other hosts."""
    host = url.split("://", 1)[-1]
    match = _SQS_HOST_REGION.match(host)
    return match.group(1).lower() if match else None
