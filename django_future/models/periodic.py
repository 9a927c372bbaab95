"""Periodic schedules' records (django_future.periodic, docs/periodic.md): each tick and
the job made for it, and each change of a schedule. Both append-only."""

from __future__ import annotations

from typing import ClassVar

import pgtrigger
from django.db import models
from django.db.models.functions import Now


def _append_only(name: str, what: str) -> pgtrigger.Trigger:
    return pgtrigger.Trigger(
        name=name,
        when=pgtrigger.Before,
        operation=pgtrigger.Update | pgtrigger.Delete,
        func=f"RAISE EXCEPTION 'django_future: % on % refused: {what} is append-only', "
        "TG_OP, TG_TABLE_NAME;",
    )


class PeriodicTick(models.Model):
    """One tick of a periodic schedule, and the job made for it.

    The unique constraint on ``(schedule, tick)`` is what makes "one job per tick"
    hold across any number of runners: the row is inserted in the same transaction as
    the job's ``scheduled`` event (``sql/periodic.sql``), and a runner that loses the
    race inserts nothing, so makes no job. The constraint is on this table, not on the
    job table, because job rows leave (``runscheduledjobs -d``, ``prune``) while a
    tick, once made, must stay made. ``job_id`` is therefore no foreign key. Rows are
    only inserted.
    """

    schedule = models.CharField(max_length=200)
    tick = models.DateTimeField()
    job_id = models.BigIntegerField()
    # The definition the tick was made under (PeriodicChange.hash).
    definition = models.CharField(max_length=64)
    enqueued_at = models.DateTimeField(db_default=Now())
    runner = models.CharField(max_length=255)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["schedule", "tick"], name="django_future_one_job_per_tick"
            ),
        ]
        triggers: ClassVar[list[pgtrigger.Trigger]] = [
            _append_only("periodic_ticks_append_only", "the tick log"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule} @ {self.tick.isoformat()}: job {self.job_id}"


class PeriodicChange(models.Model):
    """A periodic schedule's definition as it was when first seen, or its removal.

    A runner records, as it starts, each schedule whose definition (its hash) differs
    from the last one recorded, and the removal (``definition`` NULL, ``hash`` empty)
    of each schedule no longer in its settings. Ticks record the hash they were made
    under, so "what did this schedule say when it made that job" is a join. Rows are
    only inserted.
    """

    schedule = models.CharField(max_length=200)
    hash = models.CharField(max_length=64, blank=True)  # "" when removed
    definition = models.JSONField(null=True, blank=True)  # None when removed
    at = models.DateTimeField(db_default=Now())
    runner = models.CharField(max_length=255)

    class Meta:
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["schedule", "-id"], name="django_future_schedule_changes"),
        ]
        triggers: ClassVar[list[pgtrigger.Trigger]] = [
            _append_only("periodic_changes_append_only", "the schedule change log"),
        ]

    def __str__(self) -> str:
        what = f"definition {self.hash}" if self.hash else "removed"
        return f"{self.schedule}: {what} at {self.at}"
