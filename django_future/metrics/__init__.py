"""Prometheus metrics drawn from the ledger (docs/metrics.md).

- :mod:`.collector`: a ``prometheus_client`` collector that reads the ledger at scrape
  time (no counters kept in the process: every process reports the same numbers);
- :mod:`.views`: the view to mount in your urls (staff login or a bearer token), and
  :mod:`.urls` to ``include()``;
- ``manage.py scheduledjobs metrics`` prints the same text.

``prometheus-client`` is an optional dependency: ``pip install
'django-future-ledger[metrics]'``. Without it, :func:`render` raises
:class:`MetricsUnavailable`, whose message says so.
"""

from __future__ import annotations

from collections.abc import Iterable

INSTALL = (
    "Metrics need the prometheus-client package, which is not installed: "
    "pip install 'django-future-ledger[metrics]'"
)


class MetricsUnavailable(ImportError):
    """prometheus-client is not installed."""


def render(names: Iterable[str] | None = None, accept: str | None = None) -> tuple[bytes, str]:
    """The metrics as exposition text and its content type: Prometheus text format, or
    OpenMetrics when ``accept`` asks for it. ``names`` keeps only those series."""
    try:
        from prometheus_client import exposition
    except ImportError as exc:
        raise MetricsUnavailable(INSTALL) from exc
    from django_future.metrics.collector import registry

    encoder, content_type = exposition.choose_encoder(accept or "")
    return encoder(registry(None if names is None else frozenset(names))), content_type
