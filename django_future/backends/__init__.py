"""Django's task framework on the ledger: ``django_future.backends.LedgerBackend``.

::

    TASKS = {
        "default": {
            "BACKEND": "django_future.backends.LedgerBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"retries": 3, "retry_delay": "30s", "expires": "7d", "atomic": False},
        }
    }

Works with ``django.tasks`` (Django 6.0 and later) and with the ``django-tasks``
backport on Django 5.2. docs/tasks.md says what it does and how the ledger's states
read as Django's. Importing this package lets the runner run tasks
(``django_future.taskhook``).
"""

from __future__ import annotations

# Importing it fills django_future.taskhook: the runner can run tasks.
from django_future.backends import running as _running  # noqa: F401
from django_future.backends.backend import LedgerBackend, TaskReturnValueError
from django_future.backends.options import DEFAULT, LedgerTask
from django_future.backends.results import JobAbandoned, JobCancelled, JobExpired

__all__ = [
    "DEFAULT",
    "JobAbandoned",
    "JobCancelled",
    "JobExpired",
    "LedgerBackend",
    "LedgerTask",
    "TaskReturnValueError",
]
