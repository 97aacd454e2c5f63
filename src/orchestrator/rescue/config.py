"""The rescue function's configuration, read once per container from environment variables.

`REGION_QUEUES`, `HIGH_PRIORITY_QUEUES`, `MODEL_REGIONS`, `IDEMPOTENCY_TABLE_NAME`,
`ROUTING_STRATEGY`, `MAX_QUEUE_DEPTH_THRESHOLD`, `WORKERS_TABLE_NAME` and `LOG_LEVEL` mean
what they mean for the distributor (the parsers are shared: `orchestrator.core.settings`,
`orchestrator.core.placement`). A bad value raises `ConfigError` naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.core.placement import Placement, parse_model_regions
from orchestrator.core.routing import DEFAULT_STRATEGY, STRATEGY_NAMES
from orchestrator.core.settings import (
    LOG_LEVELS,
    ConfigError,
    choice,
    companion_queues,
    number,
    optional,
    primary_region,
    region_queues,
    required,
)
from orchestrator.core.stranding import DEFAULT_MAX_AGE_SECONDS, DEFAULT_STALL_SECONDS, Thresholds

DEFAULT_MAX_MESSAGES = 500
DEFAULT_VISIBILITY_TIMEOUT = 60
MAX_VISIBILITY_TIMEOUT = 43_200  # SQS's limit (12 hours)


@dataclass(frozen=True, slots=True)
class Settings:
    region_queues: Mapping[str, str]
    idempotency_table_name: str
    primary_region: str
    """Where the request table is (the function runs in the primary region)."""
    stall_seconds: float = DEFAULT_STALL_SECONDS
    max_age_seconds: float | None = DEFAULT_MAX_AGE_SECONDS
    """None: the oldest-message rule is off (no CloudWatch reads)."""
    max_messages: int = DEFAULT_MAX_MESSAGES
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    routing_strategy: str = DEFAULT_STRATEGY
    max_queue_depth_threshold: int = 5000
    workers_table_name: str | None = None
    log_level: str = "INFO"
    high_priority_queues: Mapping[str, str] = field(default_factory=dict)
    """Each region's high-priority queue (`HIGH_PRIORITY_QUEUES`); empty: standard queues only."""
    placement: Placement = field(default_factory=Placement)
    """Which regions serve which model (`MODEL_REGIONS`): rescued work stays within it."""

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.stall_seconds, self.max_age_seconds)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read and check every variable; the first bad one raises `ConfigError`."""
        max_age = number(environ, "RESCUE_MAX_AGE_SECONDS", DEFAULT_MAX_AGE_SECONDS, minimum=0)
        queues = region_queues(environ)
        return cls(
            region_queues=queues,
            idempotency_table_name=required(environ, "IDEMPOTENCY_TABLE_NAME"),
            primary_region=primary_region(environ),
            stall_seconds=number(environ, "RESCUE_STALL_SECONDS", DEFAULT_STALL_SECONDS, minimum=0),
            max_age_seconds=max_age or None,
            max_messages=int(
                number(
                    environ,
                    "RESCUE_MAX_MESSAGES",
                    DEFAULT_MAX_MESSAGES,
                    minimum=1,
                    integer=True,
                )
            ),
            visibility_timeout=int(
                number(
                    environ,
                    "RESCUE_VISIBILITY_TIMEOUT",
                    DEFAULT_VISIBILITY_TIMEOUT,
                    minimum=1,
                    maximum=MAX_VISIBILITY_TIMEOUT,
                    integer=True,
                )
            ),
            routing_strategy=choice(environ, "ROUTING_STRATEGY", DEFAULT_STRATEGY, STRATEGY_NAMES),
            max_queue_depth_threshold=int(
                number(environ, "MAX_QUEUE_DEPTH_THRESHOLD", 5000, minimum=1, integer=True)
            ),
            workers_table_name=optional(environ, "WORKERS_TABLE_NAME"),
            log_level=choice(environ, "LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
            high_priority_queues=companion_queues(environ, "HIGH_PRIORITY_QUEUES", queues),
            placement=_placement(environ, queues),
        )


def _placement(environ: Mapping[str, str], queues: Mapping[str, str]) -> Placement:
    try:
        return parse_model_regions(environ.get("MODEL_REGIONS", ""), set(queues))
    except ValueError as exc:
        raise ConfigError("MODEL_REGIONS", str(exc)) from exc
