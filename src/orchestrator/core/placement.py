"""Model placement and data residency: which regions may run a request.

Two rules narrow the regions a request may go to, and every component that picks a region
(the distributor, the rescue function, the simulator) applies both through `permitted`:

- **placement** (configuration, `MODEL_REGIONS`): which regions serve which model, e.g.
  ``{"llama-3-70b": ["us-east-1", "us-west-2"], "*": ["us-east-1", "us-west-2", "us-west-1"]}``.
  A model not named falls back to ``"*"``; with no ``"*"`` entry, to every configured region;
  with no `MODEL_REGIONS` at all, every region serves every model.
- **residency** (the request, optional field ``allowed_regions``): the regions the client
  allows its data to be processed in.

A request that no permitted region can serve is dead-lettered with ``NO_PERMITTED_REGION``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.regions import is_region_name

DEFAULT_MODEL = "*"


@dataclass(frozen=True, slots=True)
class Placement:
    """Which regions serve which model (empty: every region serves every model)."""

    model_regions: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def serving(self, model_name: str, regions: Iterable[str]) -> frozenset[str]:
        """The regions among `regions` that serve `model_name`."""
        configured = frozenset(regions)
        if not self.model_regions:
            return configured
        allowed = self.model_regions.get(model_name, self.model_regions.get(DEFAULT_MODEL))
        return configured if allowed is None else configured & allowed

    def permitted(
        self,
        model_name: str,
        allowed_regions: Collection[str] | None,
        regions: Iterable[str],
    ) -> frozenset[str]:
        """Regions that serve the model and that the request allows (both rules)."""
        serving = self.serving(model_name, regions)
        return serving if allowed_regions is None else serving & frozenset(allowed_regions)


def parse_model_regions(raw: str, known_regions: Collection[str]) -> Placement:
    """Parse `MODEL_REGIONS` (JSON object model -> list of regions); ValueError says why."""
    if not raw.strip():
        return Placement()
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not JSON ({exc.msg})") from exc
    if not isinstance(document, dict):
        raise ValueError('must be a JSON object {"model": ["region", ...]}')
    placement: dict[str, frozenset[str]] = {}
    for model, regions in document.items():
        if not isinstance(regions, list) or not regions:
            raise ValueError(f"{model!r}: must be a non-empty list of regions")
        for region in regions:
            if not is_region_name(region):
                raise ValueError(f"{model!r}: {region!r} is not an AWS region name")
            if region not in known_regions:
                raise ValueError(f"{model!r}: {region!r} has no queue in REGION_QUEUES")
        placement[model] = frozenset(regions)
    return Placement(placement)


def describe(regions: Collection[str]) -> str:
    return ", ".join(sorted(regions)) or "none"


def no_permitted_region(
    model_name: str, allowed_regions: Collection[str], serving: Collection[str]
) -> str:
    """The dead letter's `error_message` for ``NO_PERMITTED_REGION``."""
    return (
        f"no region serves model {model_name!r} within allowed_regions "
        f"[{describe(allowed_regions)}] (serving: {describe(serving)})"
    )


def queued_permitted(
    placement: Placement, body: str, regions: Iterable[str], model_name: str | None = None
) -> frozenset[str]:
    """The regions a request already in a region queue may run in, read from its body.

    For code that moves queued messages (the rescue): the body is the request as the client
    sent it, so its ``allowed_regions`` and ``model_name`` decide; `model_name` (the routing
    attribute) stands in when the body names none. Fails closed: an ``allowed_regions`` that is
    not a list of names permits nothing. A body that is not a JSON object (put on the queue by
    hand) has no residency rule; placement still applies.
    """
    try:
        document: Any = json.loads(body)
    except (ValueError, TypeError):
        document = None
    if not isinstance(document, dict):
        return placement.serving(model_name or "", regions)
    model = document.get("model_name")
    model = model if isinstance(model, str) else model_name or ""
    allowed = document.get("allowed_regions")
    if allowed is None:
        return placement.serving(model, regions)
    if not isinstance(allowed, list) or not all(isinstance(r, str) for r in allowed):
        return frozenset()
    return placement.permitted(model, allowed, regions)
