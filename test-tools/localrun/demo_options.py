"""The demo's options (`orchestrator demo` flags, and what the tests set)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from localrun.traffic import DEFAULT_HIGH_SHARE
from localrun.workers import WorkerOptions

DEFAULT_CAPACITIES = {"us-east-1": 4, "us-west-2": 2, "us-west-1": 1}
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DemoOptions:
    count: int = 300
    duplicates: int = 30
    malformed: int = 15
    retryable: int = 8
    """Valid requests whose first attempt fails (the model's RetryableError)."""
    permanent: int = 5
    """Valid requests that fail for good (the model's PermanentError)."""
    high_share: float = DEFAULT_HIGH_SHARE
    """Share of the valid requests that are ``"priority": "high"``."""
    seed: int = 7
    rate: float = 40.0
    """Messages per second sent to the master queue."""
    capacities: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_CAPACITIES))
    workers: WorkerOptions = field(default_factory=WorkerOptions)
    pollers: int = 5
    cache_ttl: float = 1.0
    rescue_every: float = 2.0
    """Seconds between rescue runs (the template's schedule: a minute); 0: no rescue."""
    rescue_stall: float = 3.0
    """RESCUE_STALL_SECONDS (the template's: 120)."""
    stop: tuple[str, float] | None = None
    """SIGTERM this region's workers this many seconds after the first send."""
    timeout: float = 90.0
    report: Path = REPO_ROOT / "reports" / "demo.html"
    stack_file: Path | None = None
    """Where to advertise the running stack; None: not at all."""
    name_suffix: str = ""
    sample_interval: float = 0.5
    progress_every: float = 2.0

    def log_path(self, name: str) -> Path:
        """``reports/demo-<name>``, beside the report."""
        return self.report.with_name(f"{self.report.stem}-{name}")
