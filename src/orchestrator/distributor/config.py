"""Distributor configuration, read once per container from environment variables.

The names match the published orchestrator (`REGION_QUEUES`, `CACHE_TTL`,
`MAX_QUEUE_DEPTH_THRESHOLD`, `IDEMPOTENCY_TABLE_NAME`, `LOG_LEVEL`) so its users can switch
without renaming. A bad value raises `ConfigError` naming the variable, at cold start.
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
    flag,
    number,
    optional,
    primary_region,
    queue_url,
    region_queues,
    required,
)

__all__ = ["ConfigError", "Settings"]


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
    high_priority_queues: Mapping[str, str] = field(default_factory=dict)
    """`HIGH_PRIORITY_QUEUES`: each region's high-priority queue (the regions of
    `region_queues`); empty: high-priority requests go to the standard queues like any other."""
    workers_table_name: str | None = None
    """The workers' presence table (`WORKERS_TABLE_NAME`): routing reads live capacity from
    it; unset, routing judges capacity from queue counts alone."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read and check every variable; the first bad one raises `ConfigError`."""
        queues = region_queues(environ)
        return cls(
            region_queues=queues,
            idempotency_table_name=required(environ, "IDEMPOTENCY_TABLE_NAME"),
            dead_letter_queue_url=queue_url(
                "DEAD_LETTER_QUEUE_URL", required(environ, "DEAD_LETTER_QUEUE_URL")
            ),
            primary_region=primary_region(environ),
            cache_ttl=number(environ, "CACHE_TTL", 10.0, minimum=0.0),
            max_queue_depth_threshold=int(
                number(environ, "MAX_QUEUE_DEPTH_THRESHOLD", 5000, minimum=1, integer=True)
            ),
            idempotency_ttl_days=int(
                number(environ, "IDEMPOTENCY_TTL_DAYS", 7, minimum=1, integer=True)
            ),
            routing_strategy=choice(environ, "ROUTING_STRATEGY", DEFAULT_STRATEGY, STRATEGY_NAMES),
            workers_table_name=optional(environ, "WORKERS_TABLE_NAME"),
            region_cooldown_seconds=number(environ, "REGION_COOLDOWN_SECONDS", 30.0, minimum=0.0),
            log_level=choice(environ, "LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
            enable_tracing=flag(environ, "ENABLE_TRACING"),
            placement=_placement(environ, queues),
            high_priority_queues=companion_queues(environ, "HIGH_PRIORITY_QUEUES", queues),
        )


def _placement(environ: Mapping[str, str], region_queues: Mapping[str, str]) -> Placement:
    try:
        return parse_model_regions(environ.get("MODEL_REGIONS", ""), set(region_queues))
    except ValueError as exc:
        raise ConfigError("MODEL_REGIONS", str(exc)) from exc
