"""The metrics view: Prometheus text for staff, or for a scraper holding the token.

Mount it in your urls::

    path("metrics", django_future.metrics.views.metrics)
    # or: path("", include("django_future.metrics.urls"))

Who may read: a logged-in, active staff user; or a request with
``Authorization: Bearer <DJANGO_FUTURE_METRICS_TOKEN>``. Anyone else gets 401 (no
credentials) or 403 (wrong ones), with a sentence saying what is needed.
"""

from __future__ import annotations

import hmac

from django.db import ProgrammingError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from django_future import config, database
from django_future.metrics import INSTALL, MetricsUnavailable, render

#: SQLSTATEs of an undefined table and an undefined function: the metrics' migration
#: has not run.
UNDEFINED = ("42P01", "42883")

#: The query parameter that picks series (repeatable), as prometheus_client's own handler.
NAME_PARAM = "name[]"


def _text(status: int, message: str, **headers: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=status, content_type="text/plain")
    for header, value in headers.items():
        response[header] = value
    return response


def refusal(request: HttpRequest) -> HttpResponse | None:
    """Why this request may not read the metrics, as a response; None if it may."""
    token = config.metrics_token()
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _text(
                401,
                "Send the token as 'Authorization: Bearer <token>'.",
                **{"WWW-Authenticate": 'Bearer realm="django_future metrics"'},
            )
        if token is None:
            return _text(
                403,
                "This server takes no metrics token "
                "(DJANGO_FUTURE_METRICS_TOKEN is not set); log in as staff instead.",
            )
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return _text(403, "Wrong metrics token: it must equal DJANGO_FUTURE_METRICS_TOKEN.")
        return None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if user.is_active and user.is_staff:
            return None
        return _text(403, "Only staff users may read the metrics.")
    way = "log in as a staff user"
    if token is not None:
        way += " or send 'Authorization: Bearer <DJANGO_FUTURE_METRICS_TOKEN>'"
    return _text(
        401,
        f"The metrics need credentials: {way}.",
        **{"WWW-Authenticate": 'Bearer realm="django_future metrics"'},
    )


def _names(request: HttpRequest) -> tuple[list[str] | None, str | None]:
    """The series asked for (None: all), or a message about a bad query."""
    from django_future.metrics.collector import NAMES

    unknown_params = sorted(set(request.GET) - {NAME_PARAM})
    if unknown_params:
        return None, (
            f"Unknown query parameter(s) {', '.join(unknown_params)}: the only one is "
            f"{NAME_PARAM}=<series name>, repeatable."
        )
    if NAME_PARAM not in request.GET:
        return None, None
    names = request.GET.getlist(NAME_PARAM)
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        return None, f"No such series: {', '.join(unknown)}. The series are: {', '.join(NAMES)}."
    return names, None


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """The ledger's metrics in Prometheus (or OpenMetrics) text format."""
    refused = refusal(request)
    if refused is not None:
        return refused
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return _text(501, INSTALL)
    names, problem = _names(request)
    if problem is not None:
        return _text(400, problem)
    try:
        body, content_type = render(names, request.headers.get("Accept"))
    except MetricsUnavailable:
        return _text(501, INSTALL)
    except ProgrammingError as exc:  # an undefined table or function: migration 0010
        if getattr(exc.__cause__, "sqlstate", None) not in UNDEFINED:
            raise
        return _text(503, database.MIGRATE_FIRST)
    return HttpResponse(body, content_type=content_type)
