"""The package's models, one module per concern; import them from here.

- ``jobs``: the event ledger (``JobEvent``) and the job projection folded from it
  (``ScheduledJob``), with the kinds of events and the operations a job's methods call.
- ``runs``: the runners and their leases, the queue limits in force, the prune records.
- ``periodic``: the ticks of periodic schedules and the changes of a schedule.
- ``metrics``: the totals a metrics scrape folds from the ledger.
- ``common``: pgtrigger's ``Meta.triggers`` option and the guards' names; imported first,
  before any model is defined.
"""

from django_future.models.common import PGTRIGGER_READY, PROJECTION_GUARD, TRIGGER_FOLDS
from django_future.models.jobs import (
    EventKind,
    JobEvent,
    LedgerOnlyError,
    Operations,
    ScheduledJob,
    ScheduledJobQuerySet,
    provide_operations,
)
from django_future.models.metrics import MetricBucket, MetricEvents, MetricGap, MetricMark
from django_future.models.periodic import PeriodicChange, PeriodicTick
from django_future.models.runs import PruneRecord, QueueLimit, RunnerProcess

__all__ = [
    "PGTRIGGER_READY",
    "PROJECTION_GUARD",
    "TRIGGER_FOLDS",
    "EventKind",
    "JobEvent",
    "LedgerOnlyError",
    "MetricBucket",
    "MetricEvents",
    "MetricGap",
    "MetricMark",
    "Operations",
    "PeriodicChange",
    "PeriodicTick",
    "PruneRecord",
    "QueueLimit",
    "RunnerProcess",
    "ScheduledJob",
    "ScheduledJobQuerySet",
    "provide_operations",
]
