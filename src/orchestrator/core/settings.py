"""Reading configuration from environment variables: one parser per kind of value, shared by
every component (the distributor, the rescue function) so that a variable such as
`REGION_QUEUES` means the same thing and fails the same way everywhere.

Each reader raises `ConfigError` naming the variable, at cold start, never later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from orchestrator.core.errors import OrchestratorError
from orchestrator.core.regions import is_region_name

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_QUEUE_URL = re.compile(r"^https?://[^\s/]+/\S+$")


class ConfigError(OrchestratorError, ValueError):
    """A configuration variable is missing or has a bad value; `variable` names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


def required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(name, "is required and not set")
    return value


def queue_url(name: str, value: Any) -> str:
    """`value` if it looks like an SQS queue URL (``https://host/account/name``)."""
    if not isinstance(value, str) or not _QUEUE_URL.match(value):
        raise ConfigError(name, f"{value!r} is not an SQS queue URL")
    return value


def region_queues(environ: Mapping[str, str], name: str = "REGION_QUEUES") -> dict[str, str]:
    """`REGION_QUEUES`: a non-empty JSON object ``{"region": "queue_url"}``."""
    raw = required(environ, name)
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(name, f"is not JSON ({exc.msg})") from exc
    if not isinstance(parsed, dict) or not parsed:
        raise ConfigError(name, 'must be a non-empty JSON object {"region": "queue_url"}')
    for region, url in parsed.items():
        if not is_region_name(region):
            raise ConfigError(name, f"{region!r} is not an AWS region name")
        queue_url(f"{name}[{region}]", url)
    return dict(parsed)


def companion_queues(
    environ: Mapping[str, str], name: str, regions: Mapping[str, str]
) -> dict[str, str]:
    """An optional second queue per region (`HIGH_PRIORITY_QUEUES`): JSON
    ``{"region": "queue_url"}`` naming exactly the regions of `regions` (`REGION_QUEUES`);
    {} when unset or empty."""
    if not environ.get(name, "").strip():
        return {}
    parsed = region_queues(environ, name)
    missing = sorted(set(regions) - set(parsed))
    extra = sorted(set(parsed) - set(regions))
    problems = [f"no queue for {', '.join(missing)}"] if missing else []
    problems += [f"{', '.join(extra)} not in REGION_QUEUES"] if extra else []
    if problems:
        raise ConfigError(name, "must name the regions of REGION_QUEUES: " + "; ".join(problems))
    return parsed


def primary_region(environ: Mapping[str, str]) -> str:
    """The function's own region: `AWS_REGION` (Lambda sets it), else `AWS_DEFAULT_REGION`."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = environ.get(name, "").strip()
        if value:
            if not is_region_name(value):
                raise ConfigError(name, f"{value!r} is not an AWS region name")
            return value
    raise ConfigError("AWS_REGION", "is required (Lambda sets it; set AWS_DEFAULT_REGION locally)")


def number(
    environ: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float,
    maximum: float = float("inf"),
    integer: bool = False,
) -> float:
    """A number from `minimum` to `maximum` (`default` when unset); `integer` refuses
    fractions."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError as exc:
        kind = "an integer" if integer else "a number"
        raise ConfigError(name, f"{raw!r} is not {kind}") from exc
    if value != value or value in (float("inf"), float("-inf")) or value < minimum:
        raise ConfigError(name, f"{raw!r} must be a finite number >= {minimum:g}")
    if value > maximum:
        raise ConfigError(name, f"{raw!r} must be <= {maximum:g}")
    return value


def choice(
    environ: Mapping[str, str],
    name: str,
    default: str,
    allowed: tuple[str, ...],
    *,
    upper: bool = False,
) -> str:
    """One of `allowed` (`default` when unset); `upper` compares in upper case."""
    raw = environ.get(name, "").strip() or default
    value = raw.upper() if upper else raw
    if value not in allowed:
        raise ConfigError(name, f"{raw!r} is not one of {', '.join(allowed)}")
    return value


def flag(environ: Mapping[str, str], name: str) -> bool:
    """true/false, 1/0, yes/no, on/off; unset is false."""
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(name, f"{raw!r} is not true/false")


def optional(environ: Mapping[str, str], name: str) -> str | None:
    """The trimmed value, or None when unset or empty."""
    return environ.get(name, "").strip() or None
