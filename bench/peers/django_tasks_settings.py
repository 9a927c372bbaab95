"""Minimal Django settings for the django-tasks-db benchmark peer (``django_tasks_bench``).

The database is the libpq conninfo in ``$DJANGO_TASKS_BENCH_DSN``. Only the task apps are
installed: ``django_tasks`` (the backport of Django 6's ``django.tasks``; on Django 6 the
backend uses ``django.tasks`` and this app is not needed) and ``django_tasks_db``.
"""

from __future__ import annotations

import os
from typing import Any

from psycopg.conninfo import conninfo_to_dict

DSN_ENV = "DJANGO_TASKS_BENCH_DSN"

# libpq conninfo keys that DATABASES takes under its own names; the rest go to OPTIONS,
# which the postgresql backend passes on to psycopg.connect().
_DJANGO_KEYS = {
    "dbname": "NAME",
    "user": "USER",
    "password": "PASSWORD",
    "host": "HOST",
    "port": "PORT",
}


def _database(conninfo: str) -> dict[str, Any]:
    params = {k: v for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    database: dict[str, Any] = {
        "ENGINE": "django.db.backends.postgresql",
        # A worker keeps its connection between tasks, as a long-running process would be
        # configured; Django's default (0) reconnects after every task in db_worker.
        "CONN_MAX_AGE": None,
    }
    for libpq, django in _DJANGO_KEYS.items():
        if libpq in params:
            database[django] = str(params.pop(libpq))
    database["OPTIONS"] = params
    return database


SECRET_KEY = "django-tasks-bench-not-secret"  # noqa: S105
DEBUG = False  # also keeps db_worker's autoreloader off (its --reload defaults to DEBUG)
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = ["django_tasks", "django_tasks_db"]
DATABASES = {"default": _database(os.environ.get(DSN_ENV, ""))}
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
