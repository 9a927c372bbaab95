"""How a run ends early: a job that failed for good, or a lost database."""

from __future__ import annotations

import sys

from django_future.models import ScheduledJob

__all__ = ["DatabaseLostError", "JobFailedError", "current_exception", "one_line"]


class JobFailedError(Exception):
    """A job failed for good (no retry left) and the run stopped there."""

    def __init__(self, job: ScheduledJob, error: str) -> None:
        self.job = job
        self.error = error
        super().__init__(f"job {job.pk} ({job.callable_name}) failed; the run stopped there")


class DatabaseLostError(Exception):
    """The runner lost its database connection and stopped; nothing it recorded is lost."""

    def __init__(self, cause: BaseException, job: ScheduledJob | None) -> None:
        self.job = job
        where = (
            f" while job {job.pk} ({job.callable_name}) was in hand; its outcome could not be "
            "recorded, so the next runner will find it abandoned and retry or fail it by its "
            "policy"
            if job is not None
            else ""
        )
        super().__init__(f"lost the database connection{where} ({one_line(cause)})")


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, as events and log lines show an exception."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def current_exception() -> BaseException:
    """The exception being handled (only called from ``except`` blocks)."""
    exc = sys.exc_info()[1]
    assert exc is not None  # noqa: S101 - only called from except blocks
    return exc
