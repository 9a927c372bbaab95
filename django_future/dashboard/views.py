"""The dashboard page of the admin: a window of the ledger, drawn on the server.

``ScheduledJobAdmin.get_urls`` mounts :func:`dashboard` behind ``admin_site.admin_view``
(active staff only, else the admin's login), and the view asks, in addition, for the
permission to view jobs. The window comes from the query string: ``minutes`` (default
15) ending at ``end`` (default now); ``earlier``/``later`` links shift it by half its
length and ``zoom in``/``zoom out`` halve or double it around the same end.

A parameter that is not a number or not a time is answered with 400 and a sentence
saying what to send; one out of range is clamped, and the page says so.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import escape

from django_future.dashboard import queries, svg
from django_future.models import ScheduledJob

TEMPLATE = "django_future/dashboard.html"


def job_url_maker() -> Any:
    """A function from a job id to its admin page's URL, reversing once, not per bar."""
    marker = 987654321
    pattern = reverse("admin:django_future_scheduledjob_change", args=[marker])
    head, tail = pattern.split(str(marker), 1)
    return lambda job_id: f"{head}{job_id}{tail}"


def _periodic() -> tuple[list[Any], str | None]:
    """Each declared periodic schedule's last and next tick, or why they cannot be shown."""
    from django_future.periodic import overview

    try:
        return overview(), None
    except (ImproperlyConfigured, ValueError) as exc:
        return [], f"The periodic schedules could not be read: {exc}"


def _navigation(window: queries.Window) -> dict[str, str]:
    half = (window.end - window.start) / 2
    later = min(window.end + half, window.now)
    return {
        "earlier": window.params(end=window.end - half),
        "later": window.params(end=later),
        "zoom_in": window.params(minutes=max(window.minutes // 2, queries.MIN_MINUTES)),
        "zoom_out": window.params(minutes=min(window.minutes * 2, queries.MAX_MINUTES)),
        "now": f"?minutes={window.minutes}",
    }


def _queues(snapshot: queries.Snapshot) -> list[dict[str, Any]]:
    rows = []
    for series in snapshot.queues:
        depth_line, lag_line = svg.queue_lines(series)
        rows.append(
            {
                "queue": series.queue,
                "depth_now": series.depth[-1],
                "depth_peak": max(series.depth),
                "lag_now": series.lag[-1],
                "lag_peak": max(series.lag),
                "depth_line": depth_line,
                "lag_line": lag_line,
                "samples": list(zip(series.instants, series.depth, series.lag, strict=True)),
            }
        )
    return rows


def _last_line(error: str) -> str:
    """An error's last line, which for a traceback is the exception and its message."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def dashboard(request: HttpRequest, admin_site: AdminSite) -> HttpResponse:
    """The page. ``admin_site`` gives the admin's context (title, sidebar, user links)."""
    if not request.user.has_perm("django_future.view_scheduledjob"):
        raise PermissionDenied
    try:
        window = queries.parse_window(request.GET, queries.database_now())
    except queries.WindowError as exc:
        return HttpResponseBadRequest(
            f"<h1>Bad request</h1><p>{escape(str(exc))}</p>", content_type="text/html"
        )
    snapshot = queries.snapshot(window)
    job_url = job_url_maker()
    periodic, periodic_problem = _periodic()
    counts: dict[str, int] = {}
    for attempt in snapshot.attempts:
        counts[attempt.outcome] = counts.get(attempt.outcome, 0) + 1
    context = {
        **admin_site.each_context(request),
        "title": "Jobs dashboard",
        "opts": ScheduledJob._meta,
        "window": window,
        "snapshot": snapshot,
        "navigation": _navigation(window),
        "timeline": svg.timeline(window, snapshot.attempts, snapshot.unrun, job_url),
        "legend": svg.legend(),
        "throughput": svg.throughput(window, snapshot.throughput, snapshot.throughput_step),
        "finished": sum(ok + bad for _, ok, bad in snapshot.throughput),
        "queues": _queues(snapshot),
        "failing": [
            {"row": f, "url": job_url(f.last_job), "summary": _last_line(f.last_error)}
            for f in snapshot.failing
        ],
        "periodic": periodic,
        "periodic_problem": periodic_problem,
        "counts": sorted(counts.items()),
        "max_bars": queries.MAX_BARS,
        "max_unrun": queries.MAX_UNRUN,
        "changelist_url": reverse("admin:django_future_scheduledjob_changelist"),
    }
    return TemplateResponse(request, TEMPLATE, context)
