"""Django settings for benchmark runners: the package, and nothing else."""

import json
import os

from tools.pg import database_settings

SECRET_KEY = "bench-not-secret"  # noqa: S105
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "pgtrigger", "django_future"]
DATABASES = {"default": database_settings(os.environ["DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# As a deployment should (README, "Security"): runners call only the bench's own jobs.
DJANGO_FUTURE_ALLOWED_CALLABLES = ["bench"]
# For bench/variants/locks_in_use.sql, whose queue runners must not clear as they start.
DJANGO_FUTURE_QUEUE_LIMITS = json.loads(os.environ.get("DJANGO_FUTURE_QUEUE_LIMITS", "{}"))
# Runners' warnings reach stderr; INFO does not. Django's django.tasks logger logs every
# task's start and finish at INFO and propagates it here: printed, that cost our runners two
# writes to a pipe per task (0.16 ms of a task's 0.45 ms of runner CPU), which the
# django-tasks-db peer, on Django's default logging, never pays.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# Periodic schedules, for bench/periodic.py's figures only (JSON); none otherwise.
DJANGO_FUTURE_PERIODIC = json.loads(os.environ.get("BENCH_PERIODIC", "{}"))
