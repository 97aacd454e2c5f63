"""Distributor configuration, read once per container from environment variables.

The names match the published orchestrator (`REGION_QUEUES`, `CACHE_TTL`,
`MAX_QUEUE_DEPTH_THRESHOLD`, `IDEMPOTENCY_TABLE_NAME`, `LOG_LEVEL`) so its users can switch
without renaming. A bad value raises `ConfigError` naming the variable, at cold start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.placement import Placement, parse_model_regions
from orchestrator.core.routing import DEFAULT_STRATEGY, STRATEGY_NAMES

ROUTING_STRATEGIES = STRATEGY_NAMES  # names and default live in orchestrator.core.routing
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class ConfigError(ValueError):
    """A configuration variable is missing or has a bad value."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True, slots=True)
class Settings:
    region_queues: Mapping[str, str]
    idempotency_table_name: str
    dead_letter_queue_url: str
    primary_region: str
    cache_ttl: float = 10.0
    max_queue_depth_threshold: int = 5000
    idempotency_ttl_days: int = 7
    routing_strategy: str = DEFAULT_STRATEGY
    region_cooldown_seconds: float = 30.0
    log_level: str = "INFO"
    enable_tracing: bool = False
    placement: Placement = field(default_factory=Placement)
    """Which regions serve which model (`MODEL_REGIONS`; empty: every region, every model)."""
    workers_table_name: str | None = None
    """The workers' presence table (`WORKERS_TABLE_NAME`): routing reads live capacity from
    it; unset, routing judges capacity from queue counts alone."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read and check every variable; the first bad one raises `ConfigError`."""
        region_queues = _region_queues(environ)
        return cls(
            region_queues=region_queues,
            idempotency_table_name=_required(environ, "IDEMPOTENCY_TABLE_NAME"),
            dead_letter_queue_url=_queue_url(
                "DEAD_LETTER_QUEUE_URL", _required(environ, "DEAD_LETTER_QUEUE_URL")
            ),
            primary_region=_primary_region(environ),
            cache_ttl=_number(environ, "CACHE_TTL", 10.0, minimum=0.0),
            max_queue_depth_threshold=int(
                _number(environ, "MAX_QUEUE_DEPTH_THRESHOLD", 5000, minimum=1, integer=True)
            ),
            idempotency_ttl_days=int(
                _number(environ, "IDEMPOTENCY_TTL_DAYS", 7, minimum=1, integer=True)
            ),
            routing_strategy=_choice(
                environ, "ROUTING_STRATEGY", DEFAULT_STRATEGY, ROUTING_STRATEGIES
            ),
            workers_table_name=environ.get("WORKERS_TABLE_NAME", "").strip() or None,
            region_cooldown_seconds=_number(environ, "REGION_COOLDOWN_SECONDS", 30.0, minimum=0.0),
            log_level=_choice(environ, "LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
            enable_tracing=_flag(environ, "ENABLE_TRACING"),
            placement=_placement(environ, region_queues),
        )


def _placement(environ: Mapping[str, str], region_queues: Mapping[str, str]) -> Placement:
    try:
        return parse_model_regions(environ.get("MODEL_REGIONS", ""), set(region_queues))
    except ValueError as exc:
        raise ConfigError("MODEL_REGIONS", str(exc)) from exc


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(name, "is required and not set")
    return value


def _queue_url(name: str, value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^\s/]+/\S+$", value):
        raise ConfigError(name, f"{value!r} is not an SQS queue URL")
    return value


def _region_queues(environ: Mapping[str, str]) -> dict[str, str]:
    raw = _required(environ, "REGION_QUEUES")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError("REGION_QUEUES", f"is not JSON ({exc.msg})") from exc
    if not isinstance(parsed, dict) or not parsed:
        raise ConfigError(
            "REGION_QUEUES", 'must be a non-empty JSON object {"region": "queue_url"}'
        )
    for region, url in parsed.items():
        if not _REGION.match(region):
            raise ConfigError("REGION_QUEUES", f"{region!r} is not an AWS region name")
        _queue_url(f"REGION_QUEUES[{region}]", url)
    return dict(parsed)


def _primary_region(environ: Mapping[str, str]) -> str:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = environ.get(name, "").strip()
        if value:
            if not _REGION.match(value):
                raise ConfigError(name, f"{value!r} is not an AWS region name")
            return value
    raise ConfigError("AWS_REGION", "is required (Lambda sets it; set AWS_DEFAULT_REGION locally)")


def _number(
    environ: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float,
    integer: bool = False,
) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError as exc:
        kind = "an integer" if integer else "a number"
        raise ConfigError(name, f"{raw!r} is not {kind}") from exc
    if value != value or value < minimum:  # NaN or too small
        raise ConfigError(name, f"{raw!r} must be >= {minimum:g}")
    return value


def _choice(
    environ: Mapping[str, str],
    name: str,
    default: str,
    allowed: tuple[str, ...],
    *,
    upper: bool = False,
) -> str:
    raw = environ.get(name, "").strip() or default
    value = raw.upper() if upper else raw
    if value not in allowed:
        raise ConfigError(name, f"{raw!r} is not one of {', '.join(allowed)}")
    return value


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(name, f"{raw!r} is not true/false")
