"""Settings of the demo project. The database comes from ``$DATABASE_URL`` (a libpq URL)."""

from __future__ import annotations

import os

import django
from django.core.exceptions import ImproperlyConfigured

from tools.pg import database_settings

_DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
if not _DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Run the demo with `python3 dev.py demo` (it starts a "
        "throwaway PostgreSQL server), or set DATABASE_URL to a libpq URL such as "
        "postgresql://user:password@localhost:5432/demo"
    )

SECRET_KEY = "django-future-ledger-demo-not-secret"  # noqa: S105
DEBUG = False
# `dev.py demo --serve` serves the admin and its jobs dashboard on this machine only.
ALLOWED_HOSTS: list[str] = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "demo.demo_project.urls"
STATIC_URL = "/static/"

USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "pgtrigger",  # installs the ledger's append-only and fold triggers
    "django_future",
    "demo.shop",
]

# The standard task API (demo/shop/tasks.py) on the ledger: every enqueue() is a job.
TASKS = {
    "default": {
        "BACKEND": "django_future.backends.LedgerBackend",
        "QUEUES": ["default", "emails", "reports"],
    }
}
if django.VERSION < (6, 0):  # Django 5.2 takes django.tasks from the django-tasks backport
    INSTALLED_APPS.append("django_tasks")

# Runners import only the shop's handlers, tasks and model methods (README, "Security").
DJANGO_FUTURE_ALLOWED_CALLABLES = ["demo.shop"]
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

DATABASES = {"default": database_settings(_DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Quiet: warnings and errors only, on stderr. A runner logs one warning per failed job,
# which is what cron would mail.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"short": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "short"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
