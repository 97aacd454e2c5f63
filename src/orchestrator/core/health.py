"""Per-container memory of regions whose sends failed recently."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RegionHealth:
    """A region whose sends fail is skipped for `cooldown` seconds, then tried again."""

    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown = cooldown
        self._clock = clock
        self._skip_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def mark_failed(self, region: str) -> None:
        with self._lock:
            self._skip_until[region] = self._clock() + self._cooldown

    def is_available(self, region: str) -> bool:
        with self._lock:
            until = self._skip_until.get(region)
            if until is None:
                return True
            if self._clock() >= until:
                del self._skip_until[region]
                return True
            return False

    def cooling_down(self) -> list[str]:
        return [region for region in list(self._skip_until) if not self.is_available(region)]
