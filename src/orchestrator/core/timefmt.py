"""The one timestamp format on the wire and in records: ISO-8601 UTC, milliseconds, ``Z``.

``2026-11-23T19:31:31.123Z``. Parsing accepts any ISO-8601 date-time with a zone (``Z`` or
an offset), because clients send both.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso_utc(epoch_seconds: float | None = None) -> str:
    """`epoch_seconds` (default: now) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    moment = datetime.fromtimestamp(time.time() if epoch_seconds is None else epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: object) -> float | None:
    """Epoch seconds of an ISO-8601 date-time with a zone; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()
