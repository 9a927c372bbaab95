"""Settings, each read through one small function with its default here.

This module imports nothing else of the package, so that every other one (the
scheduler, the ledger, the runner, the commands, the system checks) can use it.
What the package needs of its database is in ``database.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _seconds(name: str, default: float) -> dt.timedelta:
    value = getattr(settings, name, default)
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds, not {value!r}")
    return dt.timedelta(seconds=value)


def lease() -> dt.timedelta:
    """How long a runner's claim on its jobs lasts without a heartbeat (DJANGO_FUTURE_LEASE).

    A runner renews its lease every third of this; a runner silent for longer
    is taken for dead and its jobs are recovered. Default 30 seconds.
    """
    return _seconds("DJANGO_FUTURE_LEASE", 30)


def retry_delay() -> dt.timedelta:
    """Delay before the first retry when schedule_job(retries=...) gives none. Default 30 s."""
    return _seconds("DJANGO_FUTURE_RETRY_DELAY", 30)


def retry_max_delay() -> dt.timedelta:
    """Upper bound of the exponential backoff between retries. Default one hour."""
    return _seconds("DJANGO_FUTURE_RETRY_MAX_DELAY", 3600)


def poll_interval() -> dt.timedelta:
    """Longest a worker sleeps without looking at the queue (DJANGO_FUTURE_POLL_INTERVAL).

    Workers wake at once on NOTIFY when a job is scheduled; this bounds the
    sleep in case a notification is missed (PgBouncer in transaction mode
    drops LISTEN). Default 10 seconds.
    """
    return _seconds("DJANGO_FUTURE_POLL_INTERVAL", 10)


def prepared_statements() -> bool:
    """Whether runners prepare the two statements they send per job
    (DJANGO_FUTURE_PREPARED_STATEMENTS). Default True.

    Prepared once per connection, the claim and the completion are not parsed and
    planned again for every job. A runner behind a pooler that does not keep
    prepared statements (PgBouncer in transaction mode before 1.21, or with
    ``max_prepared_statements = 0``) notices on its first claim, says so in a
    warning and goes on without; set this to False to skip the attempt.
    """
    value = getattr(settings, "DJANGO_FUTURE_PREPARED_STATEMENTS", True)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(
            f"DJANGO_FUTURE_PREPARED_STATEMENTS must be True or False, not {value!r}"
        )
    return value


def periodic() -> dict[str, Any]:
    """The periodic schedules of DJANGO_FUTURE_PERIODIC, by name, as written (default
    none); ``django_future.periodic`` checks each one."""
    value = getattr(settings, "DJANGO_FUTURE_PERIODIC", None) or {}
    if not isinstance(value, dict):
        raise ImproperlyConfigured(
            f"DJANGO_FUTURE_PERIODIC must be a dict of schedules by name, not {value!r}"
        )
    return value


def metrics_token() -> str | None:
    """The bearer token that may read the metrics view (DJANGO_FUTURE_METRICS_TOKEN),
    or None (default): then only logged-in staff may. docs/metrics.md."""
    value = getattr(settings, "DJANGO_FUTURE_METRICS_TOKEN", None)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) < 16:
        raise ImproperlyConfigured(
            "DJANGO_FUTURE_METRICS_TOKEN must be a string of at least 16 characters "
            "(e.g. secrets.token_urlsafe()), or None"
        )
    return value
