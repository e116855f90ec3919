"""Error-vs-step charts as plain SVG text: the same entries give the same bytes, on any machine.

The leaderboard page draws its rollout curves with this instead of a plotting library, so the
rendered files are a pure function of the entries (and can be diffed in review). Every label
is escaped; nothing from an entry becomes markup.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 560, 320
MARGIN = {"left": 64, "right": 150, "top": 28, "bottom": 40}
# Sasha Trubetskoy's distinct colours that stay visible as thin lines on white (black is the baseline's);
# beyond them, hues a golden angle apart.
PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
    "#9a6324", "#469990", "#800000", "#808000", "#000075", "#a9a9a9", "#bfef45",
)  # fmt: skip
BASELINE_COLOUR = "#000000"


def series_colours(count: int) -> list[str]:
    """``count`` distinct colours: the palette's, then hues a golden angle apart at a darker lightness."""
    extra = [f"hsl({(137.508 * i) % 360:.1f},70%,35%)" for i in range(max(0, count - len(PALETTE)))]
    return list(PALETTE[:count]) + extra


MAX_DECADES_ABOVE_BASELINE = 3  # a blowing-up curve is clipped here, so the others stay readable
MAX_TICKS = 8


def _log_range(series: dict[str, list[float | None]], baseline: str) -> tuple[int, int]:
    """Whole decades spanning the curves, the top at most 1000 times the baseline's largest value."""
    values = [math.log10(v) for curve in series.values() for v in curve if v is not None and v > 0]
    if not values:
        return -1, 1
    low, high = math.floor(min(values)), math.ceil(max(values))
    reference = [math.log10(v) for v in series.get(baseline, []) if v is not None and v > 0]
    if reference:
        high = min(high, math.ceil(max(reference)) + MAX_DECADES_ABOVE_BASELINE)
    return (low, high) if high > low else (low - 1, high + 1)


def line_chart_svg(series: dict[str, list[float | None]], steps: list[int], title: str, y_label: str, baseline: str = "") -> str:
    """A log-scale line chart of ``series`` (label -> one value per step; None or <= 0 breaks the line).
    The ``baseline`` series is drawn dashed in black; values beyond 1000 times its largest are
    clipped at the top edge."""
    plot_w = WIDTH - MARGIN["left"] - MARGIN["right"]
    plot_h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]
    low, high = _log_range(series, baseline)
    first, last = steps[0], steps[-1]

    def x(step: int) -> float:
        return MARGIN["left"] + (0.5 if last == first else (step - first) / (last - first)) * plot_w

    def y(value: float) -> float:
        return MARGIN["top"] + (high - min(math.log10(value), high)) / (high - low) * plot_h  # clipped at the top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{WIDTH / 2:.1f}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<rect x="{MARGIN["left"]}" y="{MARGIN["top"]}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for exponent in range(low, high + 1, max(1, math.ceil((high - low) / MAX_TICKS))):
        ty = MARGIN["top"] + (high - exponent) / (high - low) * plot_h
        parts.append(f'<line x1="{MARGIN["left"]}" x2="{MARGIN["left"] + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{MARGIN["left"] - 6}" y="{ty + 4:.1f}" text-anchor="end">1e{exponent}</text>')
    for step in sorted({first, last, *steps[:: max(1, len(steps) // 5)]}):
        parts.append(f'<text x="{x(step):.1f}" y="{HEIGHT - MARGIN["bottom"] + 16}" text-anchor="middle">{step}</text>')
    parts.append(f'<text x="{MARGIN["left"] + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">rollout step</text>')
    centre = MARGIN["top"] + plot_h / 2
    parts.append(f'<text transform="translate(14,{centre:.1f}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>')
    colours = iter(series_colours(sum(label != baseline for label in series)))
    for index, (label, values) in enumerate(series.items()):
        is_baseline = label == baseline
        colour = BASELINE_COLOUR if is_baseline else next(colours)
        dash = ' stroke-dasharray="5,3"' if is_baseline else ""
        for segment in _segments(steps, values):
            points = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in segment)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>')
        ly = MARGIN["top"] + 10 + 15 * index
        lx = WIDTH - MARGIN["right"] + 10
        parts.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{lx + 22}" y="{ly}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _segments(steps: list[int], values: list[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of drawable points: a missing (diverged) or non-positive value breaks the line."""
    segments, current = [], []
    for step, value in zip(steps, values):
        if value is None or value <= 0:
            if current:
                segments.append(current)
            current = []
        else:
            current.append((step, value))
    return segments + ([current] if current else [])
