"""Django settings for the test suite (and for mypy's django-stubs plugin).

The database comes from ``$DATABASE_URL``; ``python3 dev.py test`` always sets it (to an
embedded throwaway PostgreSQL server unless you set it yourself).
"""

from __future__ import annotations

import json
import os

import django
from django.core.exceptions import ImproperlyConfigured

from tools.pg import database_settings

_DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
if not _DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Run the test suite with `python3 dev.py test` (it starts a "
        "throwaway PostgreSQL server), or set DATABASE_URL to a libpq URL such as "
        "postgresql://user:password@localhost:5432/postgres"
    )

SECRET_KEY = "django-future-ledger-tests-not-secret"  # noqa: S105
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",  # the admin's CSS for the pages tests/browser load
    "pgtrigger",
    "django_future",
    "tests.testapp",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.append("django_tasks")  # the django-tasks backport of django.tasks

# Django's tasks on the ledger (tests/tasks). "retrying" has backend-wide options.
TASKS = {
    "default": {
        "BACKEND": "django_future.backends.LedgerBackend",
        "QUEUES": ["default", "emails"],
    },
    "retrying": {
        "BACKEND": "django_future.backends.LedgerBackend",
        "QUEUES": [],
        "OPTIONS": {"retries": 2, "retry_delay": "1s", "expires": "1h"},
    },
}

DATABASES = {"default": database_settings(_DATABASE_URL)}
# Runner processes behind PgBouncer (tests/runner/test_pgbouncer.py) LISTEN on a direct
# connection, or not at all when LISTEN_DATABASE_URL is "none".
if os.environ.get("LISTEN_DATABASE_URL") == "none":
    DJANGO_FUTURE_LISTEN_DATABASE = None
elif os.environ.get("LISTEN_DATABASE_URL"):
    DATABASES["listen"] = database_settings(os.environ["LISTEN_DATABASE_URL"])
    DJANGO_FUTURE_LISTEN_DATABASE = "listen"
# ...and without prepared statements, which PgBouncer before 1.21 does not keep.
DJANGO_FUTURE_PREPARED_STATEMENTS = os.environ.get("DJANGO_FUTURE_PREPARED_STATEMENTS") != "0"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Periodic schedules of the runner processes that tests start (tests/periodic), as JSON;
# none otherwise (tests in this process declare theirs with override_settings).
DJANGO_FUTURE_PERIODIC = json.loads(os.environ.get("DJANGO_FUTURE_TEST_PERIODIC", "{}"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# Runner timings, overridable so that process tests can use short leases.
DJANGO_FUTURE_LEASE = float(os.environ.get("DJANGO_FUTURE_LEASE", "30"))
DJANGO_FUTURE_POLL_INTERVAL = float(os.environ.get("DJANGO_FUTURE_POLL_INTERVAL", "10"))
# Runner processes of the lock and limit tests take their limits from here.
DJANGO_FUTURE_QUEUE_LIMITS = json.loads(os.environ.get("DJANGO_FUTURE_QUEUE_LIMITS", "{}"))
# The callable allow-list of runner processes (tests/runner/test_allowlist_processes.py), as
# JSON; unset otherwise, the default. Its warning (unset with DEBUG off) is tested by name
# in tests/scheduler/test_allowlist.py and silenced here, where the default is on purpose.
if "DJANGO_FUTURE_TEST_ALLOWED" in os.environ:
    DJANGO_FUTURE_ALLOWED_CALLABLES = json.loads(os.environ["DJANGO_FUTURE_TEST_ALLOWED"])
SILENCED_SYSTEM_CHECKS = ["django_future.W020"]

ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
