"""The stranded-work rescue as the model runs it: the real rule, behind a small interface.

The rescue function is another component (`orchestrator.rescue`), which the simulator may not
import; its decision rule and its choice of targets live in `orchestrator.core.stranding`, and
the model calls exactly those. `RescueRule` is the seam for trying another rule. The move
itself (receive, choose, send, update the request record only while it is still FORWARDED,
delete) is modelled as always succeeding: a waiting message has no worker that could have
claimed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.core.stranding import QueueObservation, Thresholds, is_stranded

RESCUE_INTERVAL = 60.0
"""EventBridge runs the rescue function every minute."""
MAX_MESSAGES = 500
"""Messages one run moves at most, across regions (the function's RESCUE_MAX_MESSAGES)."""


class RescueRule(Protocol):
    def stranded(
        self, observation: QueueObservation, stalled_since: float | None, now: float
    ) -> bool:
        """True when the queue's waiting messages should move to other regions."""
        ...


@dataclass(frozen=True, slots=True)
class CoreRule:
    """`orchestrator.core.stranding.is_stranded` with the function's default thresholds."""

    thresholds: Thresholds = field(default_factory=Thresholds)

    def stranded(
        self, observation: QueueObservation, stalled_since: float | None, now: float
    ) -> bool:
        return is_stranded(observation, stalled_since, now, self.thresholds)
