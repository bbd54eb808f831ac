"""Charts drawn on the server as inline SVG: no JavaScript, nothing for the
Content-Security-Policy to allow (colours are SVG presentation attributes, sizes come
from ``viewBox`` and the stylesheet). Each chart is an image with a title
(``role="img"``, ``aria-labelledby`` its ``<title>``); the page puts a table of the same
numbers beside it, which is what a screen reader reads.

Text in the SVG is escaped (``markupsafe``): names of ticket types are the organiser's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Distinguishable for the common colour blindnesses (Okabe–Ito), dark enough on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#999999", "#F0E442")
_FONT = 'font-family="system-ui, sans-serif"'


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    shown: str  # the value as the chart writes it ("12", "42 %")


def _nice_max(value: int) -> int:
    """The axis' top: 2, 4, 6, 8 or 10 times a power of ten, at least ``value`` (even, so the
    half-way line is a whole number)."""
    if value <= 2:
        return 2
    step = 1
    while True:
        for factor in (2, 4, 6, 8, 10):
            if step * factor >= value:
                return step * factor
        step *= 10


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar]) -> Markup:
    """Horizontal bars, one per row, the label on the left and the value at the bar's end."""
    width, label_w, row_h, pad = 560, 250, 30, 8
    height = pad * 2 + row_h * max(len(bars), 1)
    top = _nice_max(max((b.value for b in bars), default=0))
    plot_w = width - label_w - 60
    parts = [
        f'<svg class="chart chart-bars" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{chart_id}-title"'
        f' xmlns="http://www.w3.org/2000/svg" {_FONT} font-size="15">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
    ]
    for i, bar in enumerate(bars):
        y = pad + i * row_h
        w = round(plot_w * bar.value / top) if bar.value else 0
        parts.append(
            f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4}" text-anchor="end" fill="#1f2937">'
            f"{escape(bar.label)}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{max(w, 1)}" height="{row_h - 8}" fill="{PALETTE[0]}" rx="2"/>'
            f'<text x="{label_w + w + 6}" y="{y + row_h / 2 + 4}" fill="#1f2937">{escape(bar.shown)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_chart(
    chart_id: str, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]
) -> Markup:
    """Vertical bars over time, one per bucket, stacked by series, with a legend below.
    ``labels``: one per bucket (about eight are written on the axis)."""
    width, left, right, top_pad, plot_h, axis_h = 600, 40, 12, 12, 220, 30
    legend_rows = (len(series) + 1) // 2
    height = top_pad + plot_h + axis_h + 22 * legend_rows + 8
    n = max(len(labels), 1)
    totals = [sum(values[i] for _name, values in series) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    plot_w = width - left - right
    slot = plot_w / n
    bar_w = max(slot * 0.8, 1)
    base = top_pad + plot_h
    parts = [
        f'<svg class="chart chart-stacked" viewBox="0 0 {width} {height}" role="img"'
        f' aria-labelledby="{chart_id}-title" xmlns="http://www.w3.org/2000/svg" {_FONT} font-size="14">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
    ]
    for fraction in (0, 0.5, 1):
        y = base - plot_h * fraction
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d1d5db" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#4b5563">{round(top * fraction)}</text>'
        )
    for i in range(len(labels)):
        x = left + i * slot + (slot - bar_w) / 2
        y = base
        for s, (_name, values) in enumerate(series):
            if not values[i]:
                continue
            h = plot_h * values[i] / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}"'
                f' fill="{PALETTE[s % len(PALETTE)]}"/>'
            )
    every = max(1, -(-len(labels) // 6))
    for i in range(0, len(labels), every):
        x = left + i * slot + slot / 2
        parts.append(
            f'<text x="{x:.1f}" y="{base + 18}" text-anchor="middle" fill="#4b5563">{escape(labels[i])}</text>'
        )
    for s, (name, _values) in enumerate(series):
        row, col = divmod(s, 2)
        x = left + col * (plot_w / 2)
        y = base + axis_h + row * 22 + 8
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="12" height="12" fill="{PALETTE[s % len(PALETTE)]}"/>'
            f'<text x="{x + 18:.1f}" y="{y + 11}" fill="#1f2937">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
