"""django-future-ledger: scheduled Django jobs on an append-only PostgreSQL event ledger.

The public names are imported lazily, so that ``import django_future`` works
before Django's app registry is ready (for example in settings files).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_future.runner import run_jobs
    from django_future.scheduler import job_as_parameter, schedule_job, schedule_jobs

__all__ = ["job_as_parameter", "run_jobs", "schedule_job", "schedule_jobs"]

_HOMES = {
    "schedule_job": "django_future.scheduler",
    "schedule_jobs": "django_future.scheduler",
    "job_as_parameter": "django_future.scheduler",
    "run_jobs": "django_future.runner",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'django_future' has no attribute {name!r}")
