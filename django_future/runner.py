"""Claiming and running due jobs.

A pass: append ``expired`` to scheduled jobs whose window closed, then claim
due jobs one at a time with ``FOR UPDATE SKIP LOCKED`` (appending
``started``), run each outside any transaction, and append ``completed`` or
``failed``. Any number of runners can make passes at once: a job's
``scheduled -> running`` step happens in exactly one of them.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from django_future import ledger
from django_future.models import EventKind, ScheduledJob
from django_future.scheduler import import_callable
from django_future.sql import query

__all__ = ["JobFailedError", "RunReport", "Runner", "run_jobs"]

logger = logging.getLogger("django_future.runner")


class JobFailedError(Exception):
    """A job failed and the run stopped there (run without ignore_errors)."""

    def __init__(self, job: ScheduledJob, error: str) -> None:
        self.job = job
        self.error = error
        super().__init__(f"job {job.pk} ({job.callable_name}) failed; the run stopped there")


@dataclass(slots=True)
class RunReport:
    """What one pass did, by job id."""

    completed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{len(self.completed)} completed, {len(self.failed)} failed, "
            f"{len(self.expired)} expired"
            + (f", {len(self.deleted)} deleted" if self.deleted else "")
        )


class Runner:
    """Runs due jobs until none is left. Holds no state between passes."""

    def __init__(
        self,
        *,
        delete_completed: bool = False,
        ignore_errors: bool = False,
        now: dt.datetime | None = None,
        identity: str | None = None,
    ) -> None:
        self.delete_completed = delete_completed
        self.ignore_errors = ignore_errors
        self.now = now
        self.identity = identity or ledger.runner_identity()

    def run(self) -> RunReport:
        """One pass; raises JobFailedError at the first failure unless ignoring errors."""
        report = RunReport()
        report.expired += self.expire()
        while (job := self.claim()) is not None:
            self.execute(job, report)
        report.expired += self.expire()
        return report

    def expire(self) -> list[int]:
        """Append ``expired`` to scheduled jobs whose window closed before now."""
        with connection.cursor() as cursor:
            cursor.execute(query("expire"), {"now": self.now, "runner": self.identity})
            expired = [row[0] for row in cursor.fetchall()]
        for job_id in expired:
            logger.info("job %s expired before it could run", job_id)
        return expired

    def claim(self) -> ScheduledJob | None:
        """Claim the oldest due job for this runner, or return None if nothing is due."""
        params = {"now": self.now, "runner": self.identity, "limit": 1}
        with connection.cursor() as cursor:
            cursor.execute(query("claim"), params)
            row = cursor.fetchone()
        if row is None:
            return None
        return ScheduledJob.objects.get(pk=row[0])

    def execute(self, job: ScheduledJob, report: RunReport) -> None:
        """Run a claimed job and append its outcome."""
        logger.info("job %s (%s) started", job.pk, job.callable_name)
        try:
            result = self._call(job)
        except BaseException as exc:
            error = traceback.format_exc()
            ledger.append(
                job.pk,
                EventKind.FAILED,
                {"error": error, "exception": _one_line(exc)},
                runner=self.identity,
            )
            report.failed.append(job.pk)
            logger.warning("job %s (%s) failed: %s", job.pk, job.callable_name, _one_line(exc))
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit: recorded, then honoured
            if not self.ignore_errors:
                raise JobFailedError(job, error) from exc
            return
        value = None if result is None else str(result)
        with transaction.atomic():
            ledger.append(
                job.pk, EventKind.COMPLETED, {"return_value": value}, runner=self.identity
            )
            if self.delete_completed:
                ledger.append(
                    job.pk,
                    EventKind.DELETED,
                    {"reason": "--delete-completed"},
                    runner=self.identity,
                )
        report.completed.append(job.pk)
        if self.delete_completed:
            report.deleted.append(job.pk)
        logger.info("job %s (%s) completed", job.pk, job.callable_name)

    def _call(self, job: ScheduledJob) -> Any:
        func, args = resolve(job)
        if connection.in_atomic_block:
            # Called inside someone's transaction (a test, a shell): keep a job's
            # database error from poisoning it, as autocommit would.
            with transaction.atomic():
                return func(*args, **job.kwargs)
        return func(*args, **job.kwargs)


def resolve(job: ScheduledJob) -> tuple[Callable[..., Any], list[Any]]:
    """The callable to run and its positional arguments, as django-future 0.2 built them.

    A dotted path gets the content object (if any) first; a bare name is a
    method of the content object. A ``@job_as_parameter`` handler gets the
    job before everything else.
    """
    args = list(job.args)
    content_object = None
    if job.content_type_id is not None:
        content_object = job.content_object
        if content_object is None:
            raise LookupError(
                f"the job's content object ({_content_label(job)} with pk {job.object_id!r}) "
                "no longer exists"
            )
    if "." in job.callable_name:
        func = import_callable(job.callable_name)
        if content_object is not None:
            args.insert(0, content_object)
    else:
        func = getattr(content_object, job.callable_name, None)
        if not callable(func):
            raise AttributeError(
                f"{type(content_object).__name__} has no method {job.callable_name!r}"
            )
    if getattr(func, "job_as_parameter", False):
        args.insert(0, job)
    return func, args


def _content_label(job: ScheduledJob) -> str:
    ct = job.content_type
    return f"{ct.app_label}.{ct.model}" if ct is not None else "?"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def run_jobs(
    delete_completed: bool = False,
    ignore_errors: bool = False,
    now: dt.datetime | None = None,
) -> RunReport:
    """Expire, claim and run due jobs until none is due (django-future's ``run_jobs``).

    ``now`` stands in for the current time in the due and expiry checks;
    ``None`` means the database's clock. Without ``ignore_errors`` the first
    failure is recorded and then raised as JobFailedError.
    """
    return Runner(delete_completed=delete_completed, ignore_errors=ignore_errors, now=now).run()
