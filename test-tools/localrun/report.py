"""The demo's report: one self-contained HTML page with inline SVG charts (no dependency).

Queue depth per region over time, each region's share of the work beside its share of GPU
capacity, the workers' batch sizes, the latency distribution, the dead-letter reasons and the
exactly-once audit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from localrun.resources import HIGH_LANE
from localrun.summary import (
    DEAD_LETTERS,
    MASTER,
    DemoResult,
    batch_sizes,
    dead_letter_reasons,
    distribution,
    duplicates_dropped,
    latencies,
    latency_by_priority,
    latency_percentiles,
)

PALETTE = ("#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2")
MASTER_COLOUR = "#6b7280"
DEAD_COLOUR = "#dc2626"
Point = tuple[float, float]

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111827;
  background:#f3f4f6;margin:0}
main{max-width:980px;margin:0 auto;padding:28px 24px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:0 0 12px}
.sub{color:#4b5563;margin:0 0 20px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:12px;
  margin-bottom:18px}
.card{background:#fff;border-radius:10px;padding:12px 14px;box-shadow:0 1px 2px #0001}
.card b{display:block;font-size:22px}.card span{color:#6b7280;font-size:13px}
.pass b{color:#15803d}.fail b{color:#b91c1c}
section{background:#fff;border-radius:10px;padding:18px 20px;margin-bottom:18px;
  box-shadow:0 1px 2px #0001}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{font-size:13px;color:#4b5563;font-weight:600}td.n,th.n{text-align:right;
  font-variant-numeric:tabular-nums}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px}
.ok{color:#15803d;font-weight:700}.bad{color:#b91c1c;font-weight:700}
.muted{color:#6b7280;font-size:13px}code{font-size:13px}
svg text{font:12px system-ui,sans-serif;fill:#374151}
"""


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = max(span, 1e-9) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _fmt(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def line_chart(
    series: Mapping[str, Sequence[Point]],
    colours: Mapping[str, str],
    *,
    dashed: Sequence[str] = (),
    dotted: Sequence[str] = (),
    x_label: str,
    y_label: str,
    markers: Mapping[str, float] | None = None,
    width: int = 900,
    height: int = 300,
) -> str:
    left, right, top, bottom = 52, 16, 16, 40
    xs = [x for points in series.values() for x, _ in points] or [0.0, 1.0]
    ys = [y for points in series.values() for _, y in points] or [0.0]
    x_max = max(max(xs), 1.0)
    y_step = _nice_step(max(max(ys), 1.0))
    y_max = y_step * math.ceil(max(max(ys), 1.0) / y_step)
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + x / x_max * plot_w

    def py(y: float) -> float:
        return top + plot_h - y / y_max * plot_h

    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img">']
    tick = 0.0
    while tick <= y_max + 1e-9:
        y = py(tick)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e5e7eb"/><text x="{left - 8}" y="{y + 4:.1f}" '
            f'text-anchor="end">{_fmt(tick)}</text>'
        )
        tick += y_step
    x_step = _nice_step(x_max, 8)
    tick = 0.0
    while tick <= x_max + 1e-9:
        x = px(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
            f'stroke="#9ca3af"/><text x="{x:.1f}" y="{top + plot_h + 18}" '
            f'text-anchor="middle">{_fmt(tick)}</text>'
        )
        tick += x_step
    parts.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" '
        f'stroke="#9ca3af"/>'
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    for label, at in (markers or {}).items():
        x = px(at)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="#9ca3af" stroke-dasharray="4 4"/>'
            f'<text x="{x + 4:.1f}" y="{top + 12}">{escape(label)}</text>'
        )
    for name, points in series.items():
        if not points:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        dash = ' stroke-dasharray="6 4"' if name in dashed else ""
        if name in dotted:
            dash = ' stroke-dasharray="2 3"'
        parts.append(
            f'<polyline fill="none" stroke="{colours[name]}" stroke-width="2"{dash} '
            f'stroke-linejoin="round" points="{path}"><title>{escape(name)}</title></polyline>'
        )
    parts.append("</svg>")
    return "".join(parts)


def share_bars(
    rows: Sequence[tuple[str, float, float]], colours: Mapping[str, str], width: int = 900
) -> str:
    """Per region: capacity share (light bar) above processed share (solid bar)."""
    left, bar, gap = 110, 14, 14
    height = len(rows) * (2 * bar + gap) + 24
    scale = width - left - 70
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img">']
    for i, (region, capacity, share) in enumerate(rows):
        y = 6 + i * (2 * bar + gap)
        colour = colours[region]
        parts.append(
            f'<text x="0" y="{y + bar + 4}">{escape(region)}</text>'
            f'<rect x="{left}" y="{y}" width="{capacity * scale:.1f}" height="{bar - 2}" '
            f'fill="{colour}" opacity="0.25"/>'
            f'<text x="{left + capacity * scale + 6:.1f}" y="{y + bar - 4}">'
            f"{capacity:.1%} of GPUs</text>"
            f'<rect x="{left}" y="{y + bar}" width="{share * scale:.1f}" height="{bar - 2}" '
            f'fill="{colour}"/>'
            f'<text x="{left + share * scale + 6:.1f}" y="{y + 2 * bar - 4}">'
            f"{share:.1%} of requests</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: Sequence[float], marks: Mapping[str, float], width: int = 900) -> str:
    height, left, bottom, top = 220, 52, 40, 16
    if not values:
        return "<p class='muted'>no latencies</p>"
    top_value = max(values)
    step = _nice_step(top_value, 24)
    bins = [0] * (int(top_value / step) + 1)
    for value in values:
        bins[min(int(value / step), len(bins) - 1)] += 1
    plot_w, plot_h = width - left - 16, height - top - bottom
    y_step = float(max(1, round(_nice_step(max(bins), 4))))  # whole requests
    y_max = y_step * math.ceil(max(bins) / y_step)
    bar_w = plot_w / len(bins)
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img">']
    tick = 0.0
    while tick <= y_max + 1e-9:
        y = top + plot_h - tick / y_max * plot_h
        parts.append(
            f'<line x1="{left}" x2="{width - 16}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>'
        )
        tick += y_step
    for i, count in enumerate(bins):
        h = count / y_max * plot_h
        parts.append(
            f'<rect x="{left + i * bar_w + 1:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" fill="#60a5fa">'
            f"<title>{_fmt(i * step)}-{_fmt((i + 1) * step)} s: {count}</title></rect>"
        )
    label_every = max(1, len(bins) // 8)
    for i in range(0, len(bins) + 1, label_every):
        x = left + i * bar_w
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
            f"{_fmt(round(i * step, 3))}</text>"
        )
    for row, (name, value) in enumerate(marks.items()):
        x = left + value / (len(bins) * step) * plot_w
        anchor, dx = ("end", -3) if x > width - 60 else ("start", 3)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#111827" '
            f'stroke-dasharray="3 3"/><text x="{x + dx:.1f}" y="{top + 10 + 13 * row}" '
            f'text-anchor="{anchor}">{escape(name)}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">'
        "seconds from send to the final record</text></svg>"
    )
    return "".join(parts)


def render(result: DemoResult) -> str:
    regions = list(result.capacities)
    colours = {region: PALETTE[i % len(PALETTE)] for i, region in enumerate(regions)}
    colours[MASTER] = MASTER_COLOUR
    colours[DEAD_LETTERS] = DEAD_COLOUR
    highs = [f"{region}{HIGH_LANE}" for region in regions]
    for region, high in zip(regions, highs, strict=True):
        colours[high] = colours[region]
    series: dict[str, list[Point]] = {
        name: [(s.at, float(s.depths[name].total)) for s in result.samples if name in s.depths]
        for name in [*regions, *highs, MASTER, DEAD_LETTERS]
    }
    series = {name: points for name, points in series.items() if points or name in regions}
    rows = distribution(result)
    pct = latency_percentiles(result)
    settings = result.settings
    sent_by_kind = {k: len(result.sent_of_kind(k)) for k in ("valid", "duplicate", "malformed")}
    processed_ok = sum(1 for c in result.checks if c.passed)
    verdict = "PASS" if result.passed else "FAIL"
    succeeded = sum(r.succeeded for r in rows)
    sizes = batch_sizes(result)
    calls = sum(sizes.values()) or 1
    cards = [
        ("", f"{succeeded}", f"of {sent_by_kind['valid']} requests succeeded"),
        ("", f"{sum(s * n for s, n in sizes.items()) / calls:.1f}", "mean batch size"),
        ("", str(duplicates_dropped(result)), f"of {sent_by_kind['duplicate']} retries dropped"),
        ("", str(len(result.dead_letters)), "malformed in the dead-letter queue"),
        ("", f"{pct.get('p50', 0):.2f} s", "p50 latency"),
        ("", f"{pct.get('p99', 0):.2f} s", "p99 latency"),
        (
            "pass" if result.passed else "fail",
            verdict,
            f"exactly-once audit ({processed_ok}/{len(result.checks)})",
        ),
    ]
    card_html = "".join(
        f'<div class="card {cls}"><b>{escape(v)}</b><span>{escape(t)}</span></div>'
        for cls, v, t in cards
    )
    legend = " ".join(
        f'<span><span class="dot" style="background:{colours[n]}"></span>{escape(label)}</span>'
        for n, label in [
            *((r, r) for r in regions),
            *((h, f"{h} (dotted)") for h in highs if h in series),
            (MASTER, "master queue (dashed)"),
            (DEAD_LETTERS, "dead-letter queue (dashed)"),
        ]
    )
    markers = {"sending done": result.send_seconds} if result.samples else {}
    for region, at in result.stopped.items():
        markers[f"{region} workers stopped"] = at
    depth_svg = line_chart(
        series,
        colours,
        dashed=[MASTER, DEAD_LETTERS],
        dotted=[h for h in highs if h in series],
        x_label="seconds since the run started (depths sampled every 0.25 s)",
        y_label="messages (waiting + in flight)",
        markers=_offset_markers(result, markers),
    )
    marks = {k: v for k, v in pct.items() if k != "max"}
    priority_rows = "".join(
        f"<tr><td>{escape(lane)}</td><td class='n'>{count}</td>"
        + "".join(f"<td class='n'>{_seconds(figures.get(q))}</td>" for q in ("p50", "p90", "p99"))
        + "</tr>"
        for lane, (count, figures) in latency_by_priority(result).items()
    )
    latency_svg = histogram(list(latencies(result).values()), marks)
    bars = share_bars([(r.region, r.capacity_share, r.share) for r in rows], colours)
    table_rows = "".join(
        f"<tr><td><span class='dot' style='background:{colours[r.region]}'></span>"
        f"{escape(r.region)}</td><td class='n'>{r.consumers}</td>"
        f"<td class='n'>{r.capacity_share:.1%}</td><td class='n'>{r.forwarded}</td>"
        f"<td class='n'>{r.succeeded}</td><td class='n'>{r.share:.1%}</td>"
        f"<td class='n'>{_batch(r.mean_batch)}</td>"
        f"<td class='n'>{_seconds(r.p50_latency)}</td></tr>"
        for r in rows
    )
    batch_rows = "".join(
        f"<tr><td class='n'>{size}</td><td class='n'>{sizes[size]}</td></tr>"
        for size in sorted(sizes)
    )
    dead_rows = (
        "".join(
            f"<tr><td><code>{escape(code)}</code></td><td class='n'>{count}</td>"
            f"<td>{'<br>'.join(escape(e) for e in examples)}</td></tr>"
            for code, count, examples in dead_letter_reasons(result.dead_letters)
        )
        or "<tr><td colspan=3 class='muted'>empty</td></tr>"
    )
    audit_rows = "".join(
        f"<tr><td class='{'ok' if c.passed else 'bad'}'>{'PASS' if c.passed else 'FAIL'}</td>"
        f"<td>{escape(c.name)}</td><td class='muted'>{escape(c.detail)}</td></tr>"
        for c in result.checks
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    done = (
        f"everything done {result.done_seconds:.1f} s after the first send"
        if result.done_seconds is not None
        else "timed out before everything was done"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Local demo: {verdict}, {succeeded} requests</title>
<style>{_CSS}</style></head><body><main>
<h1>Multi-Region Inference Orchestrator: local demo</h1>
<p class="sub">{when} · {len(result.sent)} messages sent at {settings.get("rate", 0):g}/s
({sent_by_kind["valid"]} requests, {sent_by_kind["duplicate"]} retries,
{sent_by_kind["malformed"]} malformed) · {done} · run took {result.total_seconds:.1f} s ·
seed {settings.get("seed")}</p>
<div class="cards">{card_html}</div>
<section><h2>Queue depth per region over time (standard and high-priority queues)</h2>{depth_svg}
<p class="muted">{legend}</p></section>
<section><h2>Share of requests vs share of GPU capacity</h2>{bars}
<table><tr><th>region</th><th class="n">GPU workers</th><th class="n">capacity share</th>
<th class="n">forwarded</th><th class="n">succeeded</th><th class="n">share</th>
<th class="n">mean batch</th><th class="n">p50 latency</th></tr>{table_rows}</table></section>
<section><h2>Worker batch sizes</h2><table><tr><th class="n">requests per predict call</th>
<th class="n">calls</th></tr>{batch_rows}</table></section>
<section><h2>End-to-end latency</h2>{latency_svg}
<p class="muted">{" · ".join(f"{k} {v:.2f} s" for k, v in pct.items())}</p>
<table><tr><th>priority</th><th class="n">requests</th><th class="n">p50</th>
<th class="n">p90</th><th class="n">p99</th></tr>{priority_rows}</table></section>
<section><h2>Dead-letter queue</h2><table><tr><th>error_code</th><th class="n">count</th>
<th>error_message (examples)</th></tr>{dead_rows}</table></section>
<section><h2>Exactly-once audit</h2><table>{audit_rows}</table></section>
<p class="muted">Distributor <code>{escape(str(settings.get("function")))}</code>
({escape(str(settings.get("routing")))} routing, CACHE_TTL {settings.get("cache_ttl")} s) run by
{settings.get("pollers")} local SQS pollers (batch {settings.get("batch_size")}, window
{settings.get("batching_window")} s): {result.invocations} invocations,
{result.failed_invocations} failed, {result.cold_starts} cold starts. GPU workers
(<code>orchestrator worker</code> processes):
{", ".join(f"{r} x{n}" for r, n in result.capacities.items())}, batch
{settings.get("worker_batch")}, simulated model {settings.get("call_ms")} ms per call +
{settings.get("item_ms")} ms per request. moto at {escape(str(settings.get("endpoint")))}.</p>
</main></body></html>
"""


def _offset_markers(result: DemoResult, markers: Mapping[str, float]) -> dict[str, float]:
    """Sending started at sample time `send_started`; markers are relative to the sampler."""
    start = result.settings.get("send_started_at", 0.0)
    return {label: float(start) + at for label, at in markers.items()}


def _batch(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def write_report(result: DemoResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result), encoding="utf-8")
    return path
