"""Charts as server-rendered inline SVG: no script, no library, styled by hookline.css.

A chart is as wide as its container and a fixed height (see :func:`_chart`), so its text
reads the same on a phone and on a wide screen. Every number in the markup is formatted
here and every text goes through :func:`markupsafe.escape`, so a chart can be put into a
page as :class:`~markupsafe.Markup`. Bars and slots have a ``<title>``: the browser shows
it as a tooltip, and screen readers read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

HEIGHT = 200  # px; the width is the container's
TOP, BOTTOM = 16, 22  # room for the top gridline's label and the time labels
PLOT_H = HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Series:
    """One line: a value per slot (None: nothing to draw there) and its CSS class."""

    name: str
    values: Sequence[float | None]
    css: str = "line"


def nice_scale(peak: float, ticks: int = 4, whole: bool = False) -> tuple[float, float]:
    """The top of the y axis and the step between gridlines for data up to ``peak``: a
    step of 1, 2, 2.5 or 5 times a power of ten (whole numbers only with ``whole``)."""
    if peak <= 0:
        return float(ticks) if whole else 1.0, 1.0 if whole else 0.25
    raw = peak / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = magnitude * 10
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw and not (whole and factor * magnitude % 1):
            step = factor * magnitude
            break
    if whole:
        step = max(1.0, math.ceil(step))
    return round(step * math.ceil(peak / step - 1e-9), 9), step


def count_label(value: float) -> str:
    """12, 1.5k, 2M: short labels for counts."""
    for size, unit in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def ms_label(value: float) -> str:
    """250 ms, 1.5 s: short labels for durations."""
    return f"{value / 1000:.3g} s" if value >= 1000 else f"{value:.3g} ms"


def percent_label(value: float) -> str:
    return f"{value:.0f}%"


def _y(value: float, top: float) -> float:
    """Height in the plot (0 at the top) of ``value`` on an axis from 0 to ``top``."""
    return PLOT_H * (1 - min(value, top) / top)


def _chart(
    title: str,
    labels: Sequence[str],
    top: float,
    step: float,
    y_label: Callable[[float], str],
    plot: list[str],
    marks: Sequence[str] = (),
) -> Markup:
    """The frame around a plot: as wide as its container, a fixed height. The plot is a
    nested SVG with one unit per slot, stretched to the width (``preserveAspectRatio``
    none; lines keep their stroke width); gridlines and labels sit outside it in pixels
    and percentages, so text keeps its size on a phone and on a wide screen."""
    n = max(len(labels), 1)
    parts = [
        f'<svg class="chart fluid" width="100%" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for k in range(round(top / step) + 1):
        y = TOP + _y(k * step, top)
        parts.append(f'<line class="gridline" x1="0" y1="{y:.1f}" x2="100%" y2="{y:.1f}"/>')
    parts.append(
        f'<svg x="0" y="{TOP}" width="100%" height="{PLOT_H}" viewBox="0 0 {n} {PLOT_H}" '
        f'preserveAspectRatio="none">{"".join(plot)}</svg>'
    )
    parts.extend(marks)  # in pixels and percentages: a circle stays round
    base = TOP + PLOT_H
    parts.append(f'<line class="axis" x1="0" y1="{base}" x2="100%" y2="{base}"/>')
    for k in range(round(top / step) + 1):  # drawn after the plot: on top of the bars
        y = TOP + _y(k * step, top)
        parts.append(
            f'<text class="ylabel" x="0" y="{y - 4:.1f}">{escape(y_label(k * step))}</text>'
        )
    every = max(1, math.ceil(n / 6))  # about six time labels, whatever the range
    for i in range(every // 2, len(labels), every):
        parts.append(
            f'<text x="{100 * (i + 0.5) / n:.2f}%" y="{HEIGHT - 6}" text-anchor="middle">'
            f"{escape(labels[i])}</text>"
        )
    parts.append("</svg>")
    # every text in parts went through escape() and every number was formatted here
    return Markup("".join(parts))  # noqa: S704


def stacked_bars(
    title: str,
    labels: Sequence[str],
    good: Sequence[int],
    bad: Sequence[int],
    names: tuple[str, str] = ("succeeded", "failed"),
) -> Markup:
    """A bar per slot: ``good`` at the bottom (.bar-ok), ``bad`` on top (.bar-bad)."""
    peak = max((g + b for g, b in zip(good, bad, strict=True)), default=0)
    top, step = nice_scale(peak, whole=True)
    plot = []
    for i, (ok, failed) in enumerate(zip(good, bad, strict=True)):
        if not ok + failed:
            continue
        tip = escape(f"{labels[i]}: {ok:,} {names[0]}, {failed:,} {names[1]}")
        y_ok, y_all = _y(ok, top), _y(ok + failed, top)
        plot.append(f"<g><title>{tip}</title>")
        if ok:
            plot.append(
                f'<rect class="bar-ok" x="{i + 0.14:.2f}" y="{y_ok:.1f}" width="0.72" '
                f'height="{PLOT_H - y_ok:.1f}"/>'
            )
        if failed:
            plot.append(
                f'<rect class="bar-bad" x="{i + 0.14:.2f}" y="{y_all:.1f}" width="0.72" '
                f'height="{y_ok - y_all:.1f}"/>'
            )
        plot.append("</g>")
    return _chart(title, labels, top, step, count_label, plot)


def lines(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    y_label: Callable[[float], str],
    top: float | None = None,
) -> Markup:
    """A line per series; a slot without a value breaks the line (a lone value is a
    dot). ``top`` fixes the y axis (100 for percentages); else it fits the data. Each
    slot with a value has a hover target whose tooltip names every series' value."""
    if top is None:
        peak = max((v for s in series for v in s.values if v is not None), default=0.0)
        top, step = nice_scale(peak)
    else:
        step = top / 4
    plot, marks = [], []
    n = max(len(labels), 1)
    for s in series:
        path: list[str] = []
        for i, value in enumerate(s.values):
            if value is None:
                continue
            y = _y(value, top)
            joined = i > 0 and s.values[i - 1] is not None
            ahead = i + 1 < len(s.values) and s.values[i + 1] is not None
            if joined:
                path.append(f"L{i + 0.5:.1f} {y:.1f}")
            elif ahead:
                path.append(f"M{i + 0.5:.1f} {y:.1f}")
            else:  # alone: no line to draw, so a dot, or nothing would show
                marks.append(
                    f'<circle class="{s.css}" cx="{100 * (i + 0.5) / n:.2f}%" '
                    f'cy="{TOP + y:.1f}" r="3"/>'
                )
        if path:
            plot.append(
                f'<path class="{s.css}" d="{"".join(path)}" vector-effect="non-scaling-stroke"/>'
            )
    for i, label in enumerate(labels):
        shown = [f"{s.name} {y_label(v)}" for s in series if (v := s.values[i]) is not None]
        if shown:
            tip = escape(f"{label}: {', '.join(shown)}")
            plot.append(
                f'<rect class="hit" x="{i}" y="0" width="1" height="{PLOT_H}">'
                f"<title>{tip}</title></rect>"
            )
    return _chart(title, labels, top, step, y_label, plot, marks)
