"""System checks: what django_future needs of its database, said before anything fails.

Registered by ``DjangoFutureConfig.ready()``. The messages come from
``django_future.database``, which the scheduler and the commands use too, so that
every path says the same sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DEFAULT_DB_ALIAS, NotSupportedError, connections

from django_future import allowlist, database, locks


@register()
def check_postgresql(
    *, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """django_future.E001: the default database must be PostgreSQL.

    Only the default alias is checked: every query of the package (the
    scheduler's, the ledger's, the runner's, the commands') goes to
    ``DEFAULT_DB_ALIAS`` through ``django.db.connection``, so another alias may
    be any database. Without a query: this runs in every ``check``, and before
    ``migrate`` and our commands.
    """
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        return []
    return [
        Error(
            database.postgresql_required(DEFAULT_DB_ALIAS),
            hint="Set DATABASES['default']['ENGINE'] to 'django.db.backends.postgresql'.",
            id="django_future.E001",
        )
    ]


@register(Tags.database)
def check_postgresql_version(
    *, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """django_future.E002: the default database must run PostgreSQL 14 or later.

    A database check (it connects): it runs in ``migrate`` and in
    ``check --database default``, for the default alias only, as E001. Django
    refuses, on connecting, a server older than its own minimum (14 for 5.2,
    15 for 6.1); that refusal is reported here too, as a check error rather
    than a traceback.
    """
    if DEFAULT_DB_ALIAS not in (databases or ()):
        return []
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        return []  # E001 says it
    try:
        version = db.pg_version  # type: ignore[attr-defined]
    except NotSupportedError as exc:
        found = f"Django refused DATABASES['default']: {exc}"
    else:
        if version >= database.POSTGRESQL_MINIMUM * 10000:
            return []
        found = f"DATABASES['default'] runs PostgreSQL {version // 10000}.{version % 10000}."
    return [Error(f"{database.POSTGRESQL_REQUIRED}, but {found}", id="django_future.E002")]


@register()
def check_pgtrigger(**kwargs: Any) -> list[CheckMessage]:
    """django_future.E003: pgtrigger must be installed, with its ``Meta.triggers``.

    Without it the ledger's triggers (append-only events, the fold, the guard on the
    job table) would not be made: every command that runs system checks, ``migrate``
    first, stops here (see ``PGTRIGGER_READY`` in models/common.py)."""
    from django.apps import apps

    from django_future.models import PGTRIGGER_READY

    if PGTRIGGER_READY:
        return []
    if not apps.is_installed("pgtrigger"):
        return [
            Error(
                "django_future needs 'pgtrigger' in INSTALLED_APPS.",
                hint='Add "pgtrigger" to INSTALLED_APPS (before or after "django_future": '
                "the order does not matter).",
                id="django_future.E003",
            )
        ]
    return [
        Error(
            "django_future needs pgtrigger's Meta.triggers, which PGTRIGGER_MODEL_META = False "
            "turns off.",
            hint="Remove PGTRIGGER_MODEL_META = False from your settings.",
            id="django_future.E003",
        )
    ]


@register()
def check_periodic(**kwargs: Any) -> list[CheckMessage]:
    """django_future.E004: every periodic schedule must be valid, checked at start-up.

    One error per schedule, naming it: an invalid cron expression, an unknown time
    zone, a callable that cannot be imported, a bad key or value
    (``django_future.periodic.problems``). Runners refuse to start with any."""
    from django_future import periodic

    return [
        Error(message, hint="See docs/periodic.md.", id="django_future.E004")
        for message in periodic.problems()
    ]


@register()
def check_queue_limits(**kwargs: Any) -> list[CheckMessage]:
    """django_future.E008: ``DJANGO_FUTURE_QUEUE_LIMITS`` must map queue names to whole
    numbers of at least 1 (django_future/locks.py). Said at start-up, before a runner
    would refuse to start over it."""
    try:
        locks.queue_limits()
    except locks.QueueLimitError as exc:
        return [
            Error(
                str(exc),
                hint='For example DJANGO_FUTURE_QUEUE_LIMITS = {"reports": 3}.',
                id="django_future.E008",
            )
        ]
    return []


@register()
def check_allowed_callables(**kwargs: Any) -> list[CheckMessage]:
    """django_future.E020: ``DJANGO_FUTURE_ALLOWED_CALLABLES`` must be a list of dotted
    prefixes (runners refuse every job while it is not). django_future.W020: unset with
    DEBUG off, a runner imports any callable a job row names (django_future/allowlist.py)."""
    found = allowlist.problems()
    if found:
        return [
            Error(
                message,
                hint='For example DJANGO_FUTURE_ALLOWED_CALLABLES = ["shop.jobs"].',
                id="django_future.E020",
            )
            for message in found
        ]
    if getattr(settings, allowlist.SETTING, None) is None and not settings.DEBUG:
        return [
            Warning(
                f"{allowlist.SETTING} is not set: a runner imports and calls any dotted "
                "path that a job row names, so whoever can write one row can run code.",
                hint=f"List the modules of your jobs and tasks in {allowlist.SETTING}, "
                'e.g. ["shop.jobs"] (README, "Security").',
                id="django_future.W020",
            )
        ]
    return []


@register()
def check_metrics_token(**kwargs: Any) -> list[CheckMessage]:
    """django_future.E012: ``DJANGO_FUTURE_METRICS_TOKEN``, when set, must be a string of
    16 characters or more (docs/metrics.md). Said at start-up, not at the first scrape."""
    from django.core.exceptions import ImproperlyConfigured

    from django_future import config

    try:
        config.metrics_token()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="See docs/metrics.md.", id="django_future.E012")]
    return []
