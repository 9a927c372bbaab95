"""Job callables for the allow-list tests: one defined here, one only imported here,
one a django.tasks task published here under another name."""

from __future__ import annotations

from django_future import schedule_job  # noqa: F401 - a name imported from elsewhere
from tests.tasks.tasks import add as add_alias  # noqa: F401 - registered as tests.tasks.tasks.add


def ok(*args: object) -> str:
    return f"ok {list(args)}"
