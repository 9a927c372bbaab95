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
    sleep in case a notification is missed, and is how often a worker looks when
    DJANGO_FUTURE_LISTEN_DATABASE is None. Default 10 seconds.
    """
    return _seconds("DJANGO_FUTURE_POLL_INTERVAL", 10)


def listen_database() -> str | None:
    """The DATABASES alias a worker LISTENs on for new jobs (DJANGO_FUTURE_LISTEN_DATABASE),
    or None: no LISTEN, the worker looks every DJANGO_FUTURE_POLL_INTERVAL. Default "default".

    Behind PgBouncer in transaction mode a LISTEN is lost with the server connection it ran
    on; name an alias that reaches PostgreSQL directly (the same database), or None.
    """
    value = getattr(settings, "DJANGO_FUTURE_LISTEN_DATABASE", "default")
    if value is not None and (not isinstance(value, str) or value not in settings.DATABASES):
        raise ImproperlyConfigured(
            "DJANGO_FUTURE_LISTEN_DATABASE must be None or an alias of DATABASES "
            f"({', '.join(settings.DATABASES)}), not {value!r}"
        )
    return value


def prepared_statements() -> bool:
    """Whether runners prepare the two statements they send per job
    (DJANGO_FUTURE_PREPARED_STATEMENTS). Default True.

    Prepared once per connection, the claim and the completion are not parsed and
    planned again for every job. Behind a pooler that does not keep prepared
    statements (PgBouncer in transaction mode before 1.21, or with
    ``max_prepared_statements = 0``) set this to False: a lone runner notices on
    its first claim and goes on without, but runners sharing the pooler's server
    connections could find each other's statements under the same names.
    """
    value = getattr(settings, "DJANGO_FUTURE_PREPARED_STATEMENTS", True)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(
            f"DJANGO_FUTURE_PREPARED_STATEMENTS must be True or False, not {value!r}"
        )
    return value


#: How deeply job arguments may nest lists and dicts (``args`` itself is level 1), for
#: ``schedule_job`` and periodic schedules alike. Real arguments need a few levels; the
#: limit keeps checking, encoding and decoding them well inside Python's recursion limit,
#: which would otherwise end a deep value with a RecursionError, in the caller or later in
#: a runner. A constant, not a setting.
ARGS_MAX_DEPTH = 100


def max_args_bytes() -> int:
    """The largest scheduled event, in bytes of JSON, that ``schedule_job`` and
    ``schedule_jobs`` write (DJANGO_FUTURE_MAX_ARGS_BYTES). Nearly all of it is the job's
    ``args`` and ``kwargs``; the rest, a few hundred bytes. Default 1 MiB: every byte is
    kept in the ledger for good and hashed into the job's chain, and is read again by
    each claim, so large data belongs elsewhere, with a reference in the arguments."""
    value = getattr(settings, "DJANGO_FUTURE_MAX_ARGS_BYTES", 1024 * 1024)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
        raise ImproperlyConfigured(
            f"DJANGO_FUTURE_MAX_ARGS_BYTES must be a whole number of bytes, at least 1024, "
            f"not {value!r}"
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
