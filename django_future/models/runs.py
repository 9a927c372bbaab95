"""Operational state and maintenance records beside the ledger: the runners and their
leases, the queue limits in force, and what each prune removed."""

from __future__ import annotations

from typing import ClassVar

import pgtrigger
from django.db import models
from django.db.models.functions import Now


class RunnerProcess(models.Model):
    """One runner process, alive while its lease is renewed.

    A runner inserts its row when it starts, renews ``lease_expires_at`` from
    a heartbeat thread, and sets ``stopped_at`` when it exits cleanly. A job
    whose runner's lease ran out (kill -9, lost machine, lost connection) or
    that stopped without finishing it is recovered by the next runner. All
    times are the database's clock. This table is operational state, not
    history: the job ledger names the runner (``host:pid``) on every event.
    """

    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    identity = models.CharField(max_length=255)  # host:pid, as on the events
    started_at = models.DateTimeField(db_default=Now())
    heartbeat_at = models.DateTimeField(db_default=Now())
    lease_expires_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes: ClassVar[list[models.Index]] = [
            models.Index(
                fields=["lease_expires_at"],
                condition=models.Q(stopped_at__isnull=True),
                name="django_future_live_runners",
            ),
        ]

    def __str__(self) -> str:
        return f"runner {self.pk} ({self.identity})"


class QueueLimit(models.Model):
    """How many jobs of a queue may run at once across every runner
    (``DJANGO_FUTURE_QUEUE_LIMITS``), as the last runner started wrote it."""

    queue = models.CharField(max_length=100, primary_key=True)
    max_running = models.IntegerField()

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.CheckConstraint(
                condition=models.Q(max_running__gte=1), name="django_future_limit_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"queue {self.queue}: at most {self.max_running} running"


class PruneRecord(models.Model):
    """What one ``scheduledjobs prune`` removed from the ledger, kept for good.

    Pruning is the one sanctioned removal of events. Each run leaves this row:
    who ran it, the cut-off, how many jobs and events went, their ids, and a
    digest of the removed chains' last hashes (sha256 over ``job_id:last_hash``
    lines in job order), so an auditor holding exported chain heads can check
    exactly what was removed. The table is append-only like the ledger.
    """

    at = models.DateTimeField(db_default=Now())
    by = models.CharField(max_length=255)
    cutoff = models.DateTimeField()
    jobs = models.PositiveIntegerField()
    events = models.PositiveIntegerField()
    job_ids = models.JSONField(default=list)
    heads_digest = models.CharField(max_length=64)

    class Meta:
        triggers: ClassVar[list[pgtrigger.Trigger]] = [
            pgtrigger.Trigger(
                name="prune_log_append_only",
                when=pgtrigger.Before,
                operation=pgtrigger.Update | pgtrigger.Delete,
                func=(
                    "RAISE EXCEPTION 'django_future: % on % refused: the prune log is "
                    "append-only', TG_OP, TG_TABLE_NAME;"
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"prune at {self.at}: {self.jobs} jobs, {self.events} events before {self.cutoff}"
