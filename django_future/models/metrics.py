"""Totals that a metrics scrape folds from the ledger (django_future.metrics,
docs/metrics.md, sql/metrics.sql), so that a scrape at any size of ledger reads a few rows
instead of every event. Written only by the SQL function django_future_metrics_fold;
history, not state, is in the events."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models.functions import Now


class MetricEvents(models.Model):
    """Events of one kind folded so far (the ``django_future_events_total`` counter)."""

    kind = models.CharField(max_length=20, primary_key=True)
    events = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.events} {self.kind} events"


class MetricBucket(models.Model):
    """One bucket of a histogram folded so far: jobs whose value fell in
    ``(previous bound, le]`` (not cumulative), and the sum of their seconds."""

    histogram = models.CharField(max_length=20)  # "duration" or "wait"
    le = models.FloatField()  # the bucket's upper bound in seconds; inf for the last
    jobs = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0)

    class Meta:
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["histogram", "le"], name="django_future_bucket_key"),
        ]

    def __str__(self) -> str:
        return f"{self.histogram} <= {self.le} s: {self.jobs} jobs"


class MetricMark(models.Model):
    """How far the fold has read the ledger: every event with ``id <= upto`` was folded,
    except the ids of the gaps (``MetricGap``)."""

    upto = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"metrics folded up to event {self.upto}"


class MetricGap(models.Model):
    """Event ids below the mark that were not visible when the fold passed them
    (``[lo, hi)``): written by a transaction still open, or rolled back. Folded when they
    appear; dropped once every transaction older than ``xid_bound`` has ended."""

    lo = models.BigIntegerField()
    hi = models.BigIntegerField()
    xid_bound = models.BigIntegerField()
    noted_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"event ids [{self.lo}, {self.hi}) not seen yet"
