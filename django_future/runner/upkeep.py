"""A runner's upkeep: recovering the jobs of runners that are gone, and expiring
scheduled jobs whose window closed. Once per lease period, and expiry again at the
end of a pass."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.db import transaction

from django_future import ledger
from django_future.models import EventKind, ScheduledJob
from django_future.runner.executor import Executor
from django_future.runner.report import RunReport, say

__all__ = ["Upkeep"]


class Upkeep:
    """Recovery and expiry for one runner; retries by the jobs' policy through its
    ``executor``, whose identity and echo it uses."""

    def __init__(self, executor: Executor, *, now: dt.datetime | None, every: float) -> None:
        self._executor = executor
        self._now = now
        self._every = every  # seconds: the runner's lease
        self._last = -float("inf")

    def when_due(self, report: RunReport) -> None:
        """Recover and expire, if a lease period has passed since the last time."""
        if time.monotonic() - self._last < self._every:
            return
        self._last = time.monotonic()
        self.recover(report)
        report.expired += self.expire()

    def recover(self, report: RunReport) -> None:
        """Append ``abandoned``/``released`` to jobs whose runner is gone; retry by policy."""
        executor = self._executor
        with transaction.atomic():  # a recovered job and its retry commit together
            for job_id, kind in ledger.recover(executor.identity):
                if kind == EventKind.RELEASED:
                    report.released.append(job_id)
                    continue
                report.abandoned.append(job_id)
                job = ScheduledJob.objects.get(pk=job_id)
                message = "job %s (%s): %s"
                say(executor.echo, logging.WARNING, message, job_id, job.callable_name, job.error)
                if executor.retry(job, job.error or "abandoned"):
                    report.retried.append(job_id)

    def expire(self) -> list[int]:
        """Append ``expired`` to scheduled jobs whose window closed before now."""
        expired = ledger.expire(now=self._now, runner=self._executor.identity)
        for job_id in expired:
            say(self._executor.echo, logging.INFO, "job %s expired before it could run", job_id)
        return expired
