"""The dashboard's pictures, drawn as inline SVG on the server.

Plain strings built here, every text from the ledger (runner names, callables,
arguments, error texts) passed through ``escape`` before it enters the markup; the
result is marked safe only at the end. No script, font or stylesheet from elsewhere:
the page works offline and under a strict Content-Security-Policy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from django_future.dashboard.queries import Attempt, QueueSeries, Unrun, Window

# An attempt's colour says how it ended; the legend and the browser tests read these.
OUTCOME_COLOURS = {
    "completed": "#2e7d32",  # green: succeeded
    "failed": "#c62828",  # red
    "abandoned": "#ef6c00",  # orange: its runner died
    "released": "#9e9e9e",  # grey: handed back unstarted when its runner stopped
    "running": "#1565c0",  # blue: not finished yet
}
OUTCOME_LABELS = {
    "completed": "succeeded",
    "failed": "failed",
    "abandoned": "abandoned",
    "released": "released",
    "running": "running",
}
MARK_COLOURS = {"expired": "#6a1b9a", "cancelled": "#455a64", "retried": "#f9a825"}

WIDTH = 1000
LABEL = 170  # the lanes' names
LANE = 22
AXIS = 24
UNRUN_LANE = "(not run: expired, cancelled)"


def _fmt(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%H:%M:%S")


def _scale(window: Window, left: float, width: float) -> Callable[[dt.datetime], float]:
    span = (window.end - window.start).total_seconds() or 1.0

    def x(t: dt.datetime) -> float:
        offset = (t - window.start).total_seconds() / span
        return left + width * min(max(offset, 0.0), 1.0)

    return x


def _axis(window: Window, x: Callable[[dt.datetime], float], top: float, bottom: float) -> str:
    parts = []
    for i in range(7):
        t = window.start + (window.end - window.start) * i / 6
        px = x(t)
        anchor = "start" if i == 0 else "end" if i == 6 else "middle"
        parts.append(
            f'<line x1="{px:.1f}" y1="{top:.1f}" x2="{px:.1f}" y2="{bottom:.1f}" '
            'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{px:.1f}" y="{bottom + 14:.1f}" font-size="11" text-anchor="{anchor}" '
            f'fill="#555">{_fmt(t)}</text>'
        )
    return "".join(parts)


def _tooltip(a: Attempt) -> str:
    ended = _fmt(a.ended) if a.ended else "still running"
    seconds = ((a.ended or a.started) - a.started).total_seconds()
    args = a.args if len(a.args) <= 200 else a.args[:200] + "..."
    lines = [
        f"job {a.job_id}: {a.callable_name or '?'}",
        f"args {args}",
        f"{OUTCOME_LABELS.get(a.outcome, a.outcome)}" + (", then retried" if a.retried else ""),
        f"{_fmt(a.started)} to {ended}" + (f" ({seconds:.1f} s)" if a.ended else ""),
        f"runner {a.runner}",
    ]
    return escape("\n".join(lines))


def timeline(
    window: Window,
    attempts: Sequence[Attempt],
    unrun: Sequence[Unrun],
    job_url: Callable[[int], str],
) -> SafeString:
    """One lane per runner process, each attempt a bar linked to its job's page; marks
    for abandoned (a cross at its end), retried (a dot at its end), and in a lane of
    their own, expired (a diamond) and cancelled (a square) jobs."""
    lanes = sorted({a.runner for a in attempts})
    if unrun:
        lanes.append(UNRUN_LANE)
    row = {name: i for i, name in enumerate(lanes)}
    plot = WIDTH - LABEL - 10
    x = _scale(window, LABEL, plot)
    height = max(len(lanes), 1) * LANE + AXIS
    bottom = max(len(lanes), 1) * LANE
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="100%" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" '
        'aria-label="job attempts per runner process">',
        _axis(window, x, 0, bottom),
    ]
    for name, i in row.items():
        y = i * LANE
        shade = "#f7f7f7" if i % 2 == 0 else "#ffffff"
        out.append(
            f'<rect x="0" y="{y}" width="{WIDTH}" height="{LANE}" fill="{shade}" '
            'fill-opacity="0.6"/>'
            f'<text x="4" y="{y + 15}" font-size="11" fill="#333" class="lane">'
            f"{escape(name if len(name) <= 28 else name[:27] + '…')}<title>{escape(name)}</title>"
            "</text>"
        )
    if not lanes:
        out.append(
            f'<text x="{LABEL}" y="15" font-size="12" fill="#777">No job ran in this window.</text>'
        )
    for a in attempts:
        y = row[a.runner] * LANE + 4
        x0 = x(a.started)
        x1 = x(a.ended or window.now)
        w = max(x1 - x0, 2.0)
        colour = OUTCOME_COLOURS.get(a.outcome, "#000000")
        marks = ""
        if a.outcome == "abandoned":
            marks += (
                f'<path d="M{x0 + w - 4:.1f},{y} l8,14 m0,-14 l-8,14" stroke="#000" '
                'stroke-width="1.5" class="mark mark-abandoned"/>'
            )
        if a.retried:
            marks += (
                f'<circle cx="{x0 + w:.1f}" cy="{y + 7}" r="4" '
                f'fill="{MARK_COLOURS["retried"]}" stroke="#000" stroke-width="0.5" '
                'class="mark mark-retried"/>'
            )
        out.append(
            f'<a href="{escape(job_url(a.job_id))}">'
            f'<rect class="bar" data-job="{a.job_id}" data-outcome="{escape(a.outcome)}" '
            f'x="{x0:.1f}" y="{y}" width="{w:.1f}" height="14" rx="2" fill="{colour}">'
            f"<title>{_tooltip(a)}</title></rect>{marks}</a>"
        )
    for u in unrun:
        cx = x(u.at)
        cy = row[UNRUN_LANE] * LANE + 11
        colour = MARK_COLOURS[u.kind]
        shape = (
            f'<path d="M{cx:.1f},{cy - 6} l6,6 l-6,6 l-6,-6 z"'
            if u.kind == "expired"
            else f'<rect x="{cx - 5:.1f}" y="{cy - 5}" width="10" height="10"'
        )
        title = escape(f"job {u.job_id}: {u.callable_name or '?'}\n{u.kind} at {_fmt(u.at)}")
        tag = "path" if u.kind == "expired" else "rect"
        out.append(
            f'<a href="{escape(job_url(u.job_id))}">{shape} fill="{colour}" '
            f'class="mark mark-{u.kind}" data-job="{u.job_id}">'
            f"<title>{title}</title></{tag}></a>"
        )
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - every text above is escaped


def legend() -> SafeString:
    items = [
        f'<span class="df-key"><svg width="14" height="10"><rect width="14" height="10" '
        f'fill="{colour}"/></svg> {OUTCOME_LABELS[name]}</span>'
        for name, colour in OUTCOME_COLOURS.items()
    ]
    items += [
        f'<span class="df-key"><svg width="12" height="12"><circle cx="6" cy="6" r="5" '
        f'fill="{colour}"/></svg> {name}</span>'
        for name, colour in MARK_COLOURS.items()
    ]
    items.append(
        '<span class="df-key"><svg width="12" height="12"><path d="M2,2 l8,8 m0,-8 l-8,8" '
        'stroke="#000" stroke-width="1.5"/></svg> abandoned (its runner died)</span>'
    )
    return mark_safe(" ".join(items))  # noqa: S308 - constants only


def sparkline(values: Sequence[float], *, colour: str, label: str) -> SafeString:
    """A small line of ``values`` (one per sample instant), its peak as a caption."""
    width, height = 240, 36
    peak = max(values, default=0) or 1
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v / peak) * (height - 6):.1f}" for i, v in enumerate(values)
    )
    return mark_safe(  # noqa: S308 - numbers and an escaped label
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'class="sparkline" role="img" aria-label="{escape(label)}">'
        f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        f"<title>{escape(label)}</title></svg>"
    )


def queue_lines(series: QueueSeries) -> tuple[SafeString, SafeString]:
    return (
        sparkline(series.depth, colour="#1565c0", label=f"{series.queue}: jobs due and waiting"),
        sparkline(series.lag, colour="#c62828", label=f"{series.queue}: lag in seconds"),
    )


def throughput(
    window: Window, buckets: Sequence[tuple[dt.datetime, int, int]], step: int
) -> SafeString:
    """Attempts finished per minute, each bucket of ``step`` minutes a stacked bar:
    completed (green) under failed and abandoned (red)."""
    width, height = WIDTH, 90
    count = max(window.minutes // step, 1)
    slot = (width - LABEL - 10) / count
    peak = max((ok + bad for _, ok, bad in buckets), default=0) or 1
    x = _scale(window, LABEL, width - LABEL - 10)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="throughput" width="100%" '
        f'viewBox="0 0 {width} {height + AXIS}" role="img" '
        'aria-label="attempts finished per minute">',
        _axis(window, x, 0, height),
        f'<text x="4" y="14" font-size="11" fill="#333">peak {peak / step:.1f}/min</text>',
    ]
    for bucket, ok, bad in buckets:
        left = x(bucket)
        for value, base, colour in ((ok, 0, OUTCOME_COLOURS["completed"]), (bad, ok, "#c62828")):
            if value:
                h = value / peak * (height - 4)
                y = height - (base / peak * (height - 4)) - h
                out.append(
                    f'<rect x="{left:.1f}" y="{y:.1f}" width="{max(slot - 1, 1):.1f}" '
                    f'height="{h:.1f}" fill="{colour}"><title>{_fmt(bucket)}: '
                    f"{ok / step:.1f} completed, {bad / step:.1f} failed per minute"
                    "</title></rect>"
                )
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308 - numbers only
