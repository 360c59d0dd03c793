"""The published counters as a line chart, drawn as SVG on the server.

Written by hand on purpose: a handful of lines over dates is some eighty lines
of SVG, and the page must work offline (no CDN) and under a strict
Content-Security-Policy (no scripts, no inline styles). Every value enters
through ``Markup.format``, which escapes it.
"""

from __future__ import annotations

from datetime import date
from math import ceil, log10

from markupsafe import Markup

WIDTH, HEIGHT = 820, 340
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 60
COLOURS = ("#b3261e", "#1f5fa8", "#2e7d32", "#8e24aa", "#ef6c00", "#00838f", "#5d4037")
Series = dict[str, list[tuple[date, int]]]


def _nice_top(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1
    power = 10 ** int(log10(value))
    return int(next(step * power for step in (1, 2, 5, 10) if step * power >= value))


def _label(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")  # a narrow space groups thousands


def line_chart(series: Series, title: str) -> Markup:
    """One line per series; each point has a tooltip with its date and value."""
    points = [p for values in series.values() for p in values]
    if not points:
        return Markup("")
    first = min(d for d, _ in points).toordinal()
    last = max(d for d, _ in points).toordinal()
    span = max(last - first, 1)
    top = _nice_top(max(v for _, v in points))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: date) -> float:
        return LEFT + (day.toordinal() - first) / span * plot_w

    def y(value: int) -> float:
        return TOP + plot_h - value / top * plot_h

    parts = [
        Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" '
            'aria-labelledby="chart-title" class="chart"><title id="chart-title">{}</title>'
        ).format(WIDTH, HEIGHT, title)
    ]
    for i in range(5):
        value = top * i // 4
        parts.append(
            Markup(
                '<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="grid"/>'
                '<text x="{}" y="{:.1f}" text-anchor="end" class="tick">{}</text>'
            ).format(LEFT, WIDTH - RIGHT, y(value), y(value), LEFT - 6, y(value) + 4, _label(value))
        )
    ticks = min(6, span + 1)
    for i in range(ticks):
        day = date.fromordinal(first + ceil(span * i / max(ticks - 1, 1)))
        parts.append(
            Markup('<text x="{:.1f}" y="{}" text-anchor="middle" class="tick">{}</text>').format(
                x(day), HEIGHT - BOTTOM + 18, day.isoformat()
            )
        )
    for n, (name, values) in enumerate(sorted(series.items())):
        colour = COLOURS[n % len(COLOURS)]
        ordered = sorted(values)
        path = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in ordered)
        parts.append(
            Markup('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>').format(
                path, colour
            )
        )
        for d, v in ordered:
            parts.append(
                Markup(
                    '<circle cx="{:.1f}" cy="{:.1f}" r="3.5" fill="{}">'
                    "<title>{}: {} on {}</title></circle>"
                ).format(x(d), y(v), colour, name, _label(v), d.isoformat())
            )
        legend_x = LEFT + n * 150
        parts.append(
            Markup(
                '<rect x="{}" y="{}" width="12" height="12" fill="{}"/>'
                '<text x="{}" y="{}" class="legend">{}</text>'
            ).format(legend_x, HEIGHT - 22, colour, legend_x + 18, HEIGHT - 12, name)
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
