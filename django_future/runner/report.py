"""What a run tells: its report (``RunReport``), its lines about jobs (``say``), and how
it ends early (``JobFailedError``, a job that failed for good; ``DatabaseLostError``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django_future.models import ScheduledJob

__all__ = [
    "REPORT_IDS",
    "DatabaseLostError",
    "JobFailedError",
    "JobIds",
    "RunReport",
    "current_exception",
    "logger",
    "one_line",
    "say",
]


# Every module of the runner logs here: LOGGING configurations name this logger.
logger = logging.getLogger("django_future.runner")

# How many ids a RunReport keeps per outcome (the most recent); it counts all of them.
REPORT_IDS = 1_000


class JobIds(list[int]):
    """The ids of the last ``REPORT_IDS`` jobs with one outcome, and how many jobs had it
    in all (``total``). A runner may work for weeks: a list of every id would grow by
    about 40 bytes per job for as long as it runs."""

    __slots__ = ("total",)

    def __init__(self, ids: Iterable[int] = ()) -> None:
        super().__init__()
        self.total = 0
        self.extend(ids)

    def append(self, job_id: int) -> None:  # once per job: kept apart from extend
        super().append(job_id)
        self.total += 1
        if len(self) > REPORT_IDS:
            del self[0]

    def extend(self, ids: Iterable[int]) -> None:
        before = len(self)
        super().extend(ids)
        self.total += len(self) - before
        if len(self) > REPORT_IDS:
            del self[:-REPORT_IDS]

    def __iadd__(self, ids: Iterable[int]) -> JobIds:  # type: ignore[override,misc]
        self.extend(ids)
        return self

    def withdraw(self, job_id: int) -> None:
        """Take back one job counted here (its id too, if it is still kept)."""
        self.total -= 1
        if job_id in self:
            self.remove(job_id)


@dataclass(slots=True)
class RunReport:
    """What one run did: for each outcome, how many jobs had it (``report.completed.total``)
    and the ids of the last ``REPORT_IDS`` of them (``report.completed``, oldest first)."""

    completed: JobIds = field(default_factory=JobIds)
    failed: JobIds = field(default_factory=JobIds)
    retried: JobIds = field(default_factory=JobIds)
    expired: JobIds = field(default_factory=JobIds)
    deleted: JobIds = field(default_factory=JobIds)
    abandoned: JobIds = field(default_factory=JobIds)  # found from dead runners
    released: JobIds = field(default_factory=JobIds)

    @property
    def ran(self) -> int:
        return self.completed.total + self.failed.total + self.retried.total

    def __str__(self) -> str:
        parts = [
            f"{self.completed.total} completed",
            f"{self.failed.total} failed",
            f"{self.expired.total} expired",
        ]
        for name in ("retried", "deleted", "abandoned", "released"):
            if total := getattr(self, name).total:
                parts.append(f"{total} {name}")
        return ", ".join(parts)


def say(echo: Callable[[str], None] | None, level: int, message: str, *args: object) -> None:
    """Log one line about a job, and pass it to ``echo`` if the runner has one
    (runscheduledjobs -v 2 prints them, whatever the project's LOGGING says)."""
    logger.log(level, message, *args)
    if echo is not None:
        echo(message % args)


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
