"""Django settings for our side of the task benchmarks (``bench.enqueue``): bench.settings,
with Django's task framework pointed at our backend, ``django_future.backends.LedgerBackend``.

On Django 5.2 the task API is the ``django-tasks`` backport (its app installed, as the
django-tasks-db peer's settings install it); Django 6 has it built in.
"""

import importlib.util

from bench.settings import *  # noqa: F403

if importlib.util.find_spec("django.tasks") is None:
    INSTALLED_APPS = ["django_tasks", *INSTALLED_APPS]  # noqa: F405

TASKS = {"default": {"BACKEND": "django_future.backends.LedgerBackend"}}
