"""Locks and queue limits: what a caller may ask for, checked before anything is written.

- A job's **lock** (``schedule_job(..., lock="user-42")``): jobs that share a lock
  never run at the same time, on any runner. The name is recorded on the job's
  ``scheduled`` event and on its row (``ScheduledJob.lock``).
- A queue's **limit** (``DJANGO_FUTURE_QUEUE_LIMITS = {"reports": 3}``): at most that
  many jobs of the queue run at once, across every runner. Each runner writes the
  limits of its settings into ``django_future_queuelimit`` as it starts; the database
  enforces them from there, so runners started with other settings follow the last
  one started (a deployment restarts them all).

How the claim enforces both, and why a snapshot test alone would not, is in
``django_future/sql/locks.sql``; what waiting means for a job is in
docs/scheduling.md ("Locks and queue limits"). This module imports only ``names`` of
the package: the scheduler, the runner and the system checks use it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from django_future.names import check_name

__all__ = ["LOCK_MAX_LENGTH", "QueueLimitError", "check_lock", "check_queue_limits", "queue_limits"]

#: The longest lock name: the column is varchar(100), and the fold refuses a longer one
#: rather than let it be cut.
LOCK_MAX_LENGTH = 100
#: The longest queue name (ScheduledJob.queue is varchar(100)).
QUEUE_MAX_LENGTH = 100


class QueueLimitError(ImproperlyConfigured, ValueError):
    """``DJANGO_FUTURE_QUEUE_LIMITS`` is not a mapping of queue names to whole numbers
    of at least 1. Both Django's error for a bad setting and a ``ValueError``."""


def check_lock(lock: object) -> str | None:
    """``lock`` if it is a usable lock name (or ``None``, no lock); else ``ValueError``.

    A lock name is a non-empty string of at most 100 characters (``names.check_name``).
    It is compared as written: ``"User-42"`` and ``"user-42"`` are two locks.
    """
    return check_name(lock, "lock", LOCK_MAX_LENGTH, example="user-42", none_means="no lock")


def check_queue_limits(value: object) -> dict[str, int]:
    """The limits of ``DJANGO_FUTURE_QUEUE_LIMITS`` (``value``), checked; else
    ``QueueLimitError`` naming the first bad entry."""
    name = "DJANGO_FUTURE_QUEUE_LIMITS"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise QueueLimitError(f"{name} must be a dict of queue names to limits, not {value!r}")
    limits: dict[str, int] = {}
    for queue, limit in value.items():
        if not isinstance(queue, str) or not queue or len(queue) > QUEUE_MAX_LENGTH:
            raise QueueLimitError(
                f"{name}: {queue!r} is not a queue name (a non-empty string of at most "
                f"{QUEUE_MAX_LENGTH} characters)"
            )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise QueueLimitError(
                f"{name}[{queue!r}] must be a whole number of at least 1 (how many jobs of "
                f"the queue may run at once), not {limit!r}"
            )
        limits[queue] = limit
    return limits


def queue_limits() -> dict[str, int]:
    """The queue limits of the settings (``DJANGO_FUTURE_QUEUE_LIMITS``; none by default)."""
    return check_queue_limits(getattr(settings, "DJANGO_FUTURE_QUEUE_LIMITS", None))
