"""What the consumer saw: each message received from a region queue, and the statistics of how
the distributor spread them (the published layout, then latency, priorities and backlog).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.core.attributes import RoutingAttributes
from orchestrator.core.stats import percentile
from orchestrator.core.timefmt import parse_iso

if TYPE_CHECKING:
    from rich.console import RenderableType

PRIORITY_ORDER = ("high", "normal", "low")
RULE = "=" * 40
THIN_RULE = "-" * 40


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Received:
    region: str
    message_id: str
    received_at: float  # epoch seconds, taken when the receive call returned
    request_id: str | None = None
    priority: str | None = None
    attempt: int | None = None
    forwarded_at: float | None = None
    request_timestamp: float | None = None

    @classmethod
    def from_message(cls, region: str, message: Mapping[str, Any], received_at: float) -> Received:
        """The routing attributes the distributor added, else what the body says."""
        try:
            body = json.loads(message.get("Body", ""))
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        routing = RoutingAttributes.from_message(message)
        return cls(
            region=region,
            message_id=message["MessageId"],
            received_at=received_at,
            request_id=routing.request_id if routing else _text(body.get("request_id")),
            priority=routing.priority if routing else _text(body.get("priority")),
            attempt=routing.attempt if routing else None,
            forwarded_at=parse_iso(routing.forwarded_at) if routing else None,
            request_timestamp=parse_iso(body.get("timestamp")),
        )

    @property
    def forward_latency_ms(self) -> float | None:
        if self.forwarded_at is None:
            return None
        return (self.received_at - self.forwarded_at) * 1000

    @property
    def request_latency_ms(self) -> float | None:
        if self.request_timestamp is None:
            return None
        return (self.received_at - self.request_timestamp) * 1000


def latency_summary(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "p50": round(percentile(values, 50), 1),
        "p90": round(percentile(values, 90), 1),
        "max": round(max(values), 1),
        "n": len(values),
    }


def _ordered_priorities(counter: Counter[str]) -> list[tuple[str, int]]:
    known = [(p, counter[p]) for p in PRIORITY_ORDER]
    others = sorted((p, n) for p, n in counter.items() if p not in PRIORITY_ORDER)
    return known + others


def _share(part: int, whole: int) -> float:
    return 100 * part / whole if whole else 0.0


@dataclass
class Stats:
    regions: list[str]
    messages: list[Received] = field(default_factory=list)
    elapsed: float = 0.0
    stopped: str = ""
    error: str | None = None
    backlog: dict[str, int | None] = field(default_factory=dict)
    """Visible messages per queue, read from every queue before polling (None: not allowed)."""
    sampled: bool = False
    """True when --max-messages was below the backlog and each region gave its share."""

    def by_region(self, region: str) -> list[Received]:
        return [m for m in self.messages if m.region == region]

    @property
    def total(self) -> int:
        return len(self.messages)

    def percent(self, region: str) -> float:
        return _share(len(self.by_region(region)), self.total)

    def priorities(self, messages: Sequence[Received] | None = None) -> Counter[str]:
        source = self.messages if messages is None else messages
        return Counter(m.priority or "unknown" for m in source)

    def duplicate_request_ids(self) -> dict[str, int]:
        counts = Counter(m.request_id for m in self.messages if m.request_id)
        return {rid: n for rid, n in sorted(counts.items()) if n > 1}

    def latency(self, region: str, attr: str) -> dict[str, float] | None:
        return latency_summary(
            [v for m in self.by_region(region) if (v := getattr(m, attr)) is not None]
        )

    @property
    def backlog_total(self) -> int | None:
        if not self.backlog or any(v is None for v in self.backlog.values()):
            return None
        return sum(v or 0 for v in self.backlog.values())

    def counting_note(self) -> str:
        """What the counts above mean, in a sentence."""
        total = self.backlog_total
        if self.stopped in ("interrupted", "error"):
            return (
                f"Counted: the messages received before the run stopped ({self.stopped}); "
                "a partial count may favour the faster queues"
            )
        if self.sampled and total is not None:
            return (
                f"Counted: a sample of {self.total} of the {total} waiting messages, taken from "
                "each region in proportion to its backlog (the shares estimate the routing)"
            )
        if total is None:
            return (
                "Counted: the messages received; the backlog could not be read "
                "(sqs:GetQueueAttributes), so a partial count may favour the faster queues"
            )
        return "Counted: every waiting message, and those that arrived while polling"

    def as_dict(self) -> dict[str, Any]:
        regions = {}
        for region in self.regions:
            msgs = self.by_region(region)
            regions[region] = {
                "count": len(msgs),
                "percent": round(self.percent(region), 1),
                "backlog_at_start": self.backlog.get(region),
                "latency_ms": {
                    "since_forwarded": self.latency(region, "forward_latency_ms"),
                    "since_request": self.latency(region, "request_latency_ms"),
                },
                "priorities": dict(self.priorities(msgs)),
                "attempts": dict(Counter(str(m.attempt or "unknown") for m in msgs)),
            }
        return {
            "total": self.total,
            "regions": regions,
            "priorities": dict(_ordered_priorities(self.priorities())),
            "duplicate_request_ids": self.duplicate_request_ids(),
            "backlog_at_start": self.backlog_total,
            "sampled": self.sampled,
            "counting": self.counting_note(),
            "elapsed_seconds": round(self.elapsed, 3),
            "stopped": self.stopped,
            "error": self.error,
        }

    def render(self) -> str:
        """The published layout, then backlog, latency per region and counts per priority."""
        lines = [RULE, "Message Distribution Statistics", RULE]
        for region in self.regions:
            count = len(self.by_region(region))
            lines.append(f"{region}: {count} messages ({self.percent(region):.1f}%)")
        lines += [THIN_RULE, f"Total: {self.total} messages", "", self.counting_note()]
        total = self.backlog_total
        if total is not None:
            lines.append("Backlog at start (visible messages, every queue read before polling)")
            for region in self.regions:
                waiting = self.backlog.get(region) or 0
                lines.append(f"{region}: {waiting} messages ({_share(waiting, total):.1f}%)")
        lines.append("")
        for title, attr in (
            ("Latency since forwarded_at (ms)", "forward_latency_ms"),
            ("Latency since request timestamp (ms)", "request_latency_ms"),
        ):
            lines.append(title)
            for region in self.regions:
                summary = self.latency(region, attr)
                if summary is None:
                    lines.append(f"{region}: no data")
                else:
                    lines.append(
                        f"{region}: p50 {summary['p50']:.1f}  p90 {summary['p90']:.1f}  "
                        f"max {summary['max']:.1f}  (n={summary['n']})"
                    )
            lines.append("")
        lines.append("Messages by priority")
        lines += [f"{p}: {n}" for p, n in _ordered_priorities(self.priorities())]
        lines.append(THIN_RULE)
        lines.append(f"Request ids received more than once: {len(self.duplicate_request_ids())}")
        return "\n".join(lines)

    def to_rich(self) -> RenderableType:
        """The same statistics as coloured tables, for a terminal."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title="Message Distribution Statistics", title_justify="left")
        for name in ("region", "messages", "share", "backlog at start", "p50 since forwarded"):
            table.add_column(name, justify="left" if name == "region" else "right")
        table.add_column("", min_width=20)
        total = self.backlog_total
        for region in self.regions:
            share = self.percent(region)
            forwarded = self.latency(region, "forward_latency_ms")
            waiting = self.backlog.get(region)
            table.add_row(
                region,
                str(len(self.by_region(region))),
                f"{share:.1f}%",
                "?"
                if waiting is None or total is None
                else f"{waiting} ({_share(waiting, total):.1f}%)",
                f"{forwarded['p50']:.1f} ms" if forwarded else "no data",
                Text("█" * round(share / 5), style="cyan"),
            )
        table.add_row("total", str(self.total), "", "" if total is None else str(total), "", "")
        priorities = ", ".join(f"{p} {n}" for p, n in _ordered_priorities(self.priorities()))
        duplicates = len(self.duplicate_request_ids())
        return Group(
            table,
            Text(self.counting_note(), style="dim"),
            Text(f"Priorities: {priorities}"),
            Text(
                f"Request ids received more than once: {duplicates}",
                style="red" if duplicates else "green",
            ),
        )


def proportional_quotas(backlog: Mapping[str, int], n: int) -> dict[str, int]:
    """`n` split across regions in proportion to their backlog (largest remainder), so a
    sample of `n` shows each region's share rather than which queue answered first."""
    total = sum(backlog.values())
    if total <= 0:
        return dict.fromkeys(backlog, 0)
    exact = {region: n * depth / total for region, depth in backlog.items()}
    quotas = {region: int(share) for region, share in exact.items()}
    by_remainder = sorted(backlog, key=lambda r: exact[r] - quotas[r], reverse=True)
    for region in by_remainder[: n - sum(quotas.values())]:
        quotas[region] += 1
    return quotas
