"""Charts people read at a glance, drawn as inline SVG on the server (no chart library).

A telemetry line gets a value axis with its unit, time labels in 24-hour local time,
gridlines at round numbers, the alarm thresholds as dashed lines, and a scale that never
shrinks below a minimum span per metric: a 0.1 °C wobble stays a flat line instead of
filling the box and looking like a fault. Bars (report minutes, availability) are
horizontal so long commune names fit on a phone. Numbers are formatted by Babel for the
page's language (decimal comma in Vietnamese); the SVG carries classes only, no inline
styles (the panel's CSP forbids them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from babel.dates import format_datetime
from babel.numbers import format_decimal
from markupsafe import Markup

from controller.core.config import DEFAULT_TIMEZONE
from controller.i18n.formats import zone

# The smallest value range a chart shows, per metric: below it, noise would look like a swing.
MIN_SPAN = {"cpu_temp_c": 10.0, "cabinet_temp_c": 10.0, "mains_v": 40.0, "net_signal_dbm": 20.0,
            "clock_offset_ms": 20.0, "amp_current_a": 1.0, "disk_free_mb": 500.0}  # fmt: skip
DEFAULT_MIN_SPAN = 1.0
MAX_POINTS = 300  # a phone-sized chart: every k-th point is plenty


def number(value: float, lang: str, digits: int = 1) -> str:
    """1234.5 as "1.234,5" in Vietnamese and "1,234.5" in English (Babel, the locale's own rules)."""
    pattern = "#,##0" + ("." + "#" * digits if digits > 0 else "")
    return str(format_decimal(value, format=pattern, locale=lang if lang in ("vi", "en") else "vi"))


def svg_markup(svg: str) -> Markup:
    """SVG built here, where every piece of text went through `escape`: safe to put in a page."""
    return Markup(svg)  # noqa: S704 - numbers and escaped text only


def nice_step(span: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 × 10^k) giving about `ticks` intervals over `span`."""
    raw = max(span, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * power + 1e-12:
            return m * power
    return 10 * power


def value_range(
    values: Sequence[float], thresholds: Sequence[float], min_span: float
) -> tuple[float, float, float]:
    """(low, high, step) of the value axis: the data and the thresholds, at least `min_span` wide
    (centred on the data), widened to round numbers."""
    lo, hi = min([*values, *thresholds]), max([*values, *thresholds])
    if hi - lo < min_span:
        mid = (min(values) + max(values)) / 2
        lo, hi = min(lo, mid - min_span / 2), max(hi, mid + min_span / 2)
    step = nice_step(hi - lo)
    return math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step, step


@dataclass(frozen=True)
class Threshold:
    value: float
    label: str  # already translated, e.g. "Ngưỡng cảnh báo"


@dataclass
class LineChart:
    title: str
    unit: str
    svg: Markup
    last: float | None
    y_min: float
    y_max: float
    t_first: datetime | None
    t_last: datetime | None
    points: int


def _thin(points: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    if len(points) <= MAX_POINTS:
        return points
    k = -(-len(points) // MAX_POINTS)
    return points[::k] + ([points[-1]] if (len(points) - 1) % k else [])


def line_chart(
    title: str,
    unit: str,
    series: Sequence[tuple[datetime, float | None]],
    *,
    metric: str,
    thresholds: Sequence[Threshold] = (),
    lang: str = "vi",
    tz: str = DEFAULT_TIMEZONE,
    width: int = 360,
    height: int = 180,
) -> LineChart:
    """One metric over time, with axes, unit, gridlines and threshold lines."""
    pts = _thin([(ts, float(v)) for ts, v in series if v is not None and math.isfinite(float(v))])
    left, right, top, bottom = 48, 10, 12, 26
    pw, ph = width - left - right, height - top - bottom
    if not pts:
        empty = svg_markup(
            f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}"></svg>'
        )
        return LineChart(title, unit, empty, None, 0, 0, None, None, 0)
    values = [v for _t, v in pts]
    lo, hi, step = value_range(values, [t.value for t in thresholds], MIN_SPAN.get(metric, DEFAULT_MIN_SPAN))
    t0, t1 = pts[0][0].timestamp(), pts[-1][0].timestamp()
    t_span = max(t1 - t0, 1.0)

    def x(ts: datetime) -> float:
        return left + (pw / 2 if t1 == t0 else (ts.timestamp() - t0) / t_span * pw)

    def y(v: float) -> float:
        return top + ph - (v - lo) / (hi - lo) * ph

    digits = 0 if step >= 1 else 1 if step >= 0.1 else 2
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)} ({escape(unit)})"'
        f' data-y-min="{lo:g}" data-y-max="{hi:g}" data-plot-top="{top}" data-plot-height="{ph}">'
    ]
    ticks = round((hi - lo) / step)
    for i in range(ticks + 1):  # horizontal gridlines and value labels
        v = lo + i * step
        yy = y(v)
        parts.append(f'<line class="chart-grid" x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}"/>')
        parts.append(
            f'<text class="chart-tick chart-ytick" x="{left - 4}" y="{yy + 3:.1f}" text-anchor="end">'
            f"{escape(number(v, lang, digits))}</text>"
        )
    parts.append(f'<text class="chart-unit" x="4" y="{top - 2}">{escape(unit)}</text>')
    times = (
        [pts[0][0]]
        if t1 == t0
        else [pts[0][0], datetime.fromtimestamp((t0 + t1) / 2, pts[0][0].tzinfo), pts[-1][0]]
    )
    for i, ts in enumerate(times):  # vertical gridlines and 24-hour local times
        xx = x(ts)
        anchor = "middle" if len(times) == 1 or i == 1 else "start" if i == 0 else "end"
        label = format_datetime(
            ts.astimezone(zone(tz)), "HH:mm", locale=lang if lang in ("vi", "en") else "vi"
        )
        parts.append(f'<line class="chart-grid" x1="{xx:.1f}" x2="{xx:.1f}" y1="{top}" y2="{top + ph}"/>')
        parts.append(
            f'<text class="chart-tick chart-xtick" x="{xx:.1f}" y="{height - 8}" '
            f'text-anchor="{anchor}">{escape(label)}</text>'
        )
    parts.append(f'<line class="chart-axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}"/>')
    parts.append(f'<line class="chart-axis" x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}"/>')
    for th in thresholds:
        yy = y(th.value)
        text = f"{th.label} {number(th.value, lang, digits)} {unit}"
        parts.append(
            f'<line class="chart-threshold" x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}">'
            f"<title>{escape(text)}</title></line>"
        )
        parts.append(
            f'<text class="chart-threshold-label" x="{left + pw - 2}" y="{yy - 3:.1f}" '
            f'text-anchor="end">{escape(text)}</text>'
        )
    if len(pts) == 1:
        parts.append(f'<circle class="chart-point" cx="{x(pts[0][0]):.1f}" cy="{y(values[0]):.1f}" r="3.5"/>')
    else:
        path = "M" + " L".join(f"{x(ts):.1f},{y(v):.1f}" for ts, v in pts)
        parts.append(f'<path class="chart-line" d="{path}"/>')
        parts.append(
            f'<circle class="chart-point" cx="{x(pts[-1][0]):.1f}" cy="{y(values[-1]):.1f}" r="2.5"/>'
        )
    parts.append("</svg>")
    return LineChart(
        title, unit, svg_markup("".join(parts)), values[-1], lo, hi, pts[0][0], pts[-1][0], len(pts)
    )


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    href: str | None = None
    kind: str = ""  # extra CSS class, e.g. "bad" for a low availability


def bar_chart(
    bars: Sequence[Bar],
    *,
    unit: str,
    lang: str = "vi",
    digits: int = 1,
    max_value: float | None = None,
    title: str = "",
    width: int = 360,
) -> Markup:
    """Horizontal bars, one row per label, the formatted value at the end of each bar."""
    row, label_w, value_w, top = 26, 130, 70, 4
    height = top + row * max(len(bars), 1)
    top_value = max_value if max_value is not None else max([b.value for b in bars] + [0.0])
    top_value = top_value if top_value > 0 else 1.0
    bw = width - label_w - value_w
    parts = [f'<svg class="bars" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">']
    for i, b in enumerate(bars):
        y0 = top + i * row
        w = max(b.value, 0) / top_value * bw
        name = b.label if len(b.label) <= 22 else b.label[:21] + "…"
        value_text = f"{number(b.value, lang, digits)} {unit}".strip()
        label = (
            f'<text class="bar-label" x="{label_w - 6}" y="{y0 + 16}" text-anchor="end">{escape(name)}'
            f"<title>{escape(b.label)}</title></text>"
        )
        if b.href:
            label = f'<a href="{escape(b.href)}">{label}</a>'
        parts.append(label)
        parts.append(
            f'<rect class="bar {escape(b.kind)}" x="{label_w}" y="{y0 + 4}" width="{w:.1f}" '
            f'height="{row - 8}"><title>{escape(b.label)}: {escape(value_text)}</title></rect>'
        )
        parts.append(
            f'<text class="bar-value" x="{label_w + w + 4:.1f}" y="{y0 + 16}">{escape(value_text)}</text>'
        )
    parts.append("</svg>")
    return svg_markup("".join(parts))
