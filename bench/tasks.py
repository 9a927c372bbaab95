"""The benchmark's task for Django's task API (``@task``), run through our backend.

Import it only where Django is set up with ``bench.tasks_settings``: ``@task()`` looks its
backend up in ``settings.TASKS`` when it is applied. The runners that call it import it
by its path, with the same settings.
"""

from __future__ import annotations

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task


@task()
def noop() -> None:
    """The benchmark job: does nothing."""
