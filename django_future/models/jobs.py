"""The two tables: the event ledger and the job projection folded from it.

``JobEvent`` is the source of truth. Rows are only ever inserted; PostgreSQL
itself refuses ``UPDATE``, ``DELETE`` and ``TRUNCATE`` on the table.

``ScheduledJob`` is a projection: a statement-level ``AFTER INSERT`` trigger on
the ledger folds the statement's new events into the jobs' rows, in the same
statement and therefore the same transaction. Another trigger refuses every
write to the projection that does not come from that fold, so the two can never
drift apart. The fold itself is one PL/pgSQL function (``django_future_fold``,
``sql/fold.sql``, called by ``sql/fold_trigger.sql``) that
``verify`` and ``rebuild`` reuse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pgtrigger
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models import Value
from django.db.models.functions import Now

from django_future.indexes import BrinIndex
from django_future.models.common import TRIGGER_FOLDS


class EventKind(models.TextChoices):
    """What happened to a job. Each kind moves the job's status as noted; the
    fold (``sql/fold.sql``) rejects an event its job's status does not allow."""

    # Written by schedule_job(); creates the job with status "scheduled".
    # Its data holds everything the job needs, so the projection can be rebuilt.
    SCHEDULED = "scheduled"
    # Written by early development builds (before the squashed 0001) when claiming a batch:
    # "scheduled" -> "claimed" (reserved, not started). No longer written, but
    # the fold keeps it so that old ledgers replay.
    CLAIMED = "claimed"
    # Written by a runner when it starts a job (with the rest of its batch, if
    # it claims several), naming the runner and counting the attempt:
    # "scheduled" or "claimed" -> "running".
    STARTED = "started"
    # Written by the runner when the callable returned: "running" -> "complete".
    COMPLETED = "completed"
    # Written by the runner when the callable raised, could not be imported,
    # or its content object was gone: "running" -> "failed".
    FAILED = "failed"
    # Written by any runner that finds a running job whose runner died (its
    # lease ran out, or it stopped without finishing): "running" -> "failed".
    ABANDONED = "abandoned"
    # Written after "failed" or "abandoned" when the job has attempts left:
    # "failed" -> "scheduled", due again after the backoff the event records.
    RETRY = "retry"
    # Written when a runner stops before calling a job it started with its batch:
    # "running" -> "scheduled", and the attempt is given back. (Also from
    # "claimed", in ledgers of those early builds.)
    RELEASED = "released"
    # Written by a runner for a scheduled job whose window (time_slot_end)
    # passed before it ran: "scheduled" -> "expired". Never runs afterwards.
    EXPIRED = "expired"
    # Written by ScheduledJob.cancel() (or the admin), saying who and why:
    # "scheduled" -> "cancelled". Never runs afterwards.
    CANCELLED = "cancelled"
    # Written by ``runscheduledjobs --delete-completed``: removes a finished
    # job's projection row. Its events stay.
    DELETED = "deleted"


class ScheduledJobQuerySet(models.QuerySet["ScheduledJob"]):
    def scheduled(self) -> ScheduledJobQuerySet:
        return self.filter(status=ScheduledJob.STATUS_SCHEDULED)

    def running(self) -> ScheduledJobQuerySet:
        return self.filter(status=ScheduledJob.STATUS_RUNNING)


class LedgerOnlyError(RuntimeError):
    """ScheduledJob rows are a projection of the event ledger and cannot be
    saved or deleted directly: use schedule_job(), run_jobs() or append an event."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)


class ScheduledJob(models.Model):
    """The current state of one job, as folded from its events.

    Field names and status constants are those of django-future 0.2, so code
    written against it keeps working.
    """

    STATUS_SCHEDULED = "scheduled"
    STATUS_RUNNING = "running"
    STATUS_FAILED = "failed"
    STATUS_COMPLETE = "complete"
    STATUS_EXPIRED = "expired"
    STATUS_CLAIMED = "claimed"
    STATUS_CANCELLED = "cancelled"
    STATUS_CHOICES: ClassVar[list[tuple[str, str]]] = [
        (STATUS_SCHEDULED, "Scheduled"),  # left by a runner's claim, expiry or cancel()
        (STATUS_CLAIMED, "Claimed"),  # left when its runner starts or releases it
        (STATUS_RUNNING, "Running"),  # left when its runner records the outcome, or
        # when another runner finds it abandoned
        (STATUS_FAILED, "Failed"),  # final, unless a retry event follows
        (STATUS_COMPLETE, "Complete"),  # final; may be deleted by -d
        (STATUS_EXPIRED, "Expired"),  # final
        (STATUS_CANCELLED, "Cancelled"),  # final
    ]
    FINAL_STATUSES: ClassVar[frozenset[str]] = frozenset(
        {STATUS_FAILED, STATUS_COMPLETE, STATUS_EXPIRED, STATUS_CANCELLED}
    )

    callable_name = models.CharField(max_length=255)
    # No index of its own: every index on this table is rewritten by each event's
    # update, and jobs are looked up by content object through the ledger's history.
    content_type = models.ForeignKey(
        ContentType,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    # Text, so that jobs can point at models with integer, UUID or text keys.
    object_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    content_object = GenericForeignKey("content_type", "object_id")
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)

    time_slot_start = models.DateTimeField()
    time_slot_end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=STATUS_SCHEDULED)

    execution_start = models.DateTimeField(null=True, blank=True)
    execution_end = models.DateTimeField(null=True, blank=True)
    # NULL means "not yet" or "none": a job that returned None keeps return_value None,
    # as in django-future 0.2, which an empty string would not distinguish.
    runner = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    error = models.TextField(null=True, blank=True)  # noqa: DJ001
    return_value = models.TextField(null=True, blank=True)  # noqa: DJ001
    # The RunnerProcess that claimed or runs the job (its lease says whether it lives).
    runner_process = models.ForeignKey(
        "RunnerProcess",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        db_index=False,  # the partial index django_future_in_hand serves recovery
    )

    # Policy, fixed at scheduling time (see schedule_job).
    # The counters below are IntegerFields, not PositiveIntegerFields: those add a
    # CHECK constraint, which PostgreSQL parses and plans again for every statement
    # that writes the table, and the fold already keeps them in range (migration
    # 0009: "scheduled" refuses negative retries, and the rest only count up).
    atomic = models.BooleanField(default=False)
    max_attempts = models.IntegerField(default=1)
    retry_delay = models.DurationField(null=True, blank=True)
    retry_max_delay = models.DurationField(null=True, blank=True)
    attempts = models.IntegerField(default=0)  # "started" events so far

    created_at = models.DateTimeField()
    # seq of the last event folded into this row; the next event must be last_seq + 1.
    last_seq = models.IntegerField()
    # hash of that event: the next event's hash is chained to it.
    last_hash = models.CharField(max_length=64)
    # Which runners take the job (runscheduledjobs --queue/--exclude-queue), and before
    # which others: a larger priority first, from -100 to 100 (the fold refuses any
    # other). Fixed at scheduling time. Last because migration 0004 added them.
    queue = models.CharField(max_length=100, default="default")
    priority = models.IntegerField(default=0)
    # A unique job's key, and while it holds it: "pending" (scheduled and never
    # started) or "active" (pending, claimed or running). NULL both for a job without
    # a key. Fixed at scheduling time; sql/unique.sql explains which rows hold a key.
    unique_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    unique_while = models.CharField(max_length=10, null=True, blank=True)  # noqa: DJ001

    # Not a column: False only on the job that schedule_job() returned instead of
    # making one, because that job held the unique key asked for.
    created: bool = True
    # Jobs that share a lock never run at the same time (schedule_job(lock=...);
    # sql/locks.sql). Fixed at scheduling time; migration 0008 added it.
    lock = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    # The slot of its queue's limit that the job's last run took (0 .. limit - 1), from
    # its "started" event; None in a queue without a limit. Held while the job is
    # claimed or running (sql/locks.sql). Migration 0011 added it.
    slot = models.IntegerField(null=True, blank=True)

    objects = ScheduledJobQuerySet.as_manager()

    class Meta:
        ordering = ("time_slot_start", "id")
        indexes: ClassVar[list[models.Index]] = [
            # The claim: WHERE status = 'scheduled' AND time_slot_start <= now
            # ORDER BY priority DESC, time_slot_start, id (sql/claim.sql). Only live
            # work is in this index.
            models.Index(
                fields=["-priority", "time_slot_start", "id"],
                condition=models.Q(status="scheduled"),
                name="django_future_claimable",
            ),
            models.Index(
                fields=["time_slot_end"],
                condition=models.Q(status="scheduled"),
                name="django_future_expirable",
            ),
            # Recovery: claimed or running jobs, by runner, to check their leases.
            models.Index(
                fields=["runner_process"],
                condition=models.Q(status__in=["claimed", "running"]),
                name="django_future_in_hand",
            ),
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            # The jobs that hold their unique key, one per key (sql/unique.sql, which
            # repeats this condition in its ON CONFLICT). A job without a key is not
            # in it. Never-started scheduled jobs, and active-mode jobs in hand.
            models.UniqueConstraint(
                fields=["unique_key"],
                condition=models.Q(unique_key__isnull=False)
                & (
                    models.Q(status="scheduled", last_seq=1)
                    | models.Q(
                        unique_while="active", status__in=["scheduled", "claimed", "running"]
                    )
                ),
                name="django_future_unique_key",
            ),
            # A lock, and a slot of a limited queue, are held by the job that is claimed
            # or running with it, and by no other record (sql/locks.sql): at most one
            # such job per lock, and per slot.
            models.UniqueConstraint(
                fields=["lock"],
                condition=models.Q(lock__isnull=False)
                & models.Q(status__in=["claimed", "running"]),
                name="django_future_lock_held",
            ),
            models.UniqueConstraint(
                fields=["queue", "slot"],
                condition=models.Q(slot__isnull=False)
                & models.Q(status__in=["claimed", "running"]),
                name="django_future_slot_held",
            ),
        ]
        # No CHECK constraints, for the reason given above max_attempts: a window
        # that closes before it opens is refused by "scheduled" (in the fold and in
        # the bulk writer) and by "retry" (sql/fold.sql).
        triggers: ClassVar[list[pgtrigger.Trigger]] = [
            # Only the fold may write this table: the fold trigger (so depth >= 1),
            # or a writer that folds its own events (see TRIGGER_FOLDS). Once per
            # statement, which refuses the same writes as once per row would: its
            # condition reads no row. A row trigger also made PostgreSQL fetch and
            # lock the old row again for every UPDATE, and cost the runner's one-job
            # step 7% of its throughput (bench/compare.py, 6 rounds).
            pgtrigger.Trigger(
                name="written_by_ledger_only",
                level=pgtrigger.Statement,
                when=pgtrigger.Before,
                operation=pgtrigger.Insert | pgtrigger.Update | pgtrigger.Delete,
                condition=pgtrigger.Condition(f"pg_trigger_depth() < 1 AND {TRIGGER_FOLDS}"),
                func=(
                    "RAISE EXCEPTION 'django_future: % on % refused: jobs change only by "
                    "appending events to django_future_jobevent', TG_OP, TG_TABLE_NAME;"
                ),
            ),
            pgtrigger.Trigger(
                name="no_truncate_projection",
                level=pgtrigger.Statement,
                when=pgtrigger.Before,
                operation=pgtrigger.Truncate,
                func=(
                    "RAISE EXCEPTION 'django_future: TRUNCATE refused: jobs change only by "
                    "appending events to django_future_jobevent';"
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.callable_name} #{self.pk} ({self.status})"

    def __repr__(self) -> str:
        return f"<ScheduledJob ({self.status}) callable={self.callable_name!r}>"

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise LedgerOnlyError()

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise LedgerOnlyError()

    def cancel(self, *, by: str | None = None, reason: str = "") -> ScheduledJob:
        """Cancel this scheduled job: it will never run. Records who and why.

        ``by`` names who cancelled (a user name, a system); it defaults to this
        process (``host:pid``). Raises ``ledger.JobStateError`` unless the job
        is scheduled (a claimed or running job belongs to its runner).
        ``ledger.cancel(job_id)`` does the same.
        """
        _operations().cancel(self.pk, by=by, reason=reason)
        return ScheduledJob.objects.get(pk=self.pk)

    def reschedule(
        self,
        date: Any,
        callable_name: str | None = None,
        content_object: models.Model | None = None,
        expires: Any = "7d",
        args: Any = None,
        kwargs: Any = None,
        *,
        by: str | None = None,
    ) -> ScheduledJob:
        """Schedule a copy of this job at ``date`` and return it.

        The callable, content object, args and kwargs not given are copied;
        ``expires`` defaults to ``'7d'`` as in django-future 0.2. The retry
        policy, ``atomic``, the queue, the priority and the lock are copied. The new
        job's ``scheduled`` event records ``rescheduled_from`` (and ``by``, who asked,
        if given).
        """
        if by is not None and (
            not isinstance(by, str) or "\x00" in by or len(by) > 255 or not by.isprintable()
        ):
            raise ValueError(f"by must be a name of at most 255 printable characters, not {by!r}")
        if content_object is None and self.content_type_id is not None:
            content_object = self.content_object
            if content_object is None:
                raise ValueError(
                    f"cannot reschedule job {self.pk}: its content object "
                    f"(pk {self.object_id!r}) no longer exists"
                )
        return _operations().schedule_job(
            date,
            callable_name if callable_name is not None else self.callable_name,
            content_object=content_object,
            expires=expires,
            args=args if args is not None else self.args,
            kwargs=kwargs if kwargs is not None else self.kwargs,
            retries=self.max_attempts - 1,
            retry_delay=self.retry_delay,
            retry_max_delay=self.retry_max_delay,
            atomic=self.atomic,
            queue=self.queue,
            priority=self.priority,
            lock=self.lock,
            _origin={"rescheduled_from": self.pk, **({"by": by} if by else {})},
        )

    @property
    def events(self) -> models.QuerySet[JobEvent]:
        """This job's events, oldest first."""
        return JobEvent.objects.filter(job_id=self.pk).order_by("seq")


class JobEvent(models.Model):
    """One immutable fact about a job. Only ever inserted.

    ``job_id`` is a plain column, not a foreign key, so that the history
    outlives the job's row in the projection.
    """

    job_id = models.BigIntegerField()
    # 1 for "scheduled", then the job's last_seq + 1 (the fold); no CHECK, as above.
    seq = models.IntegerField()
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    at = models.DateTimeField(db_default=Now())
    runner = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # sha256 of the previous event's hash and this event's fields (set by the
    # database; see django_future_event_hash). Breaks if history is edited.
    hash = models.CharField(max_length=64, blank=True, editable=False)
    data = models.JSONField(
        default=dict, db_default=Value({}, output_field=models.JSONField()), blank=True
    )

    class Meta:
        ordering = ("id",)
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["job_id", "seq"], name="django_future_event_job_seq"),
        ]
        indexes: ClassVar[list[models.Index]] = [
            # For the auditor's "what happened since ..." (docs/audit.md). BRIN, since
            # events are appended in time order (see django_future.indexes): a B-tree
            # here took two index insertions per job in the runner's step (migration 0010).
            BrinIndex(fields=["at"], name="django_future_event_at"),
        ]
        triggers: ClassVar[list[pgtrigger.Trigger]] = [
            pgtrigger.Trigger(
                name="append_only",
                when=pgtrigger.Before,
                operation=pgtrigger.Update | pgtrigger.Delete,
                func=(
                    "RAISE EXCEPTION 'django_future: % on % refused: the job ledger is "
                    "append-only', TG_OP, TG_TABLE_NAME;"
                ),
            ),
            pgtrigger.Trigger(
                name="no_truncate_ledger",
                level=pgtrigger.Statement,
                when=pgtrigger.Before,
                operation=pgtrigger.Truncate,
                func=(
                    "RAISE EXCEPTION 'django_future: TRUNCATE refused: the job ledger is "
                    "append-only';"
                ),
            ),
            # Rows written without a hash (psql, the ORM) are stamped before they
            # are stored: the statement's time, whatever the writer sent, and a hash
            # chained to the job's previous event.
            pgtrigger.Trigger(
                name="stamp_event",
                when=pgtrigger.Before,
                operation=pgtrigger.Insert,
                condition=pgtrigger.Condition("NEW.hash IS NULL OR NEW.hash = ''"),
                func=(
                    "NEW.at := statement_timestamp(); "
                    "NEW.hash := django_future_stamp(NEW); RETURN NEW;"
                ),
            ),
            # Once per statement: check every new event's stamps and fold them into
            # the projection (sql/fold_trigger.sql). In the statement, so
            # events and projection commit or fail together. Skipped for the
            # statements of writers that fold their own events (see TRIGGER_FOLDS).
            pgtrigger.Trigger(
                name="fold_events",
                level=pgtrigger.Statement,
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                referencing=pgtrigger.Referencing(new="new_events"),
                condition=pgtrigger.Condition(TRIGGER_FOLDS),
                func=(
                    "PERFORM django_future_apply_events(ARRAY("
                    "SELECT e::django_future_jobevent FROM new_events e "
                    "ORDER BY e.job_id, e.seq)); RETURN NULL;"
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.job_id} #{self.seq} {self.kind}"

    def __repr__(self) -> str:
        return f"<JobEvent job={self.job_id} seq={self.seq} kind={self.kind!r}>"


# --- job.cancel() and job.reschedule() ------------------------------------------------
#
# Two conveniences that users call on a job, carried out by the layers above this
# module: ``ledger.cancel`` and ``scheduler.schedule_job``, which both import the
# models. This module imports neither, not even inside a method: that would close a
# cycle (models -> ledger -> models), only hidden. Instead the app's ready()
# (apps.py), which sits above every layer, hands the two operations in, and the
# methods call whatever was handed in. tests/setup/test_layers.py keeps it so.


@dataclass(frozen=True, slots=True)
class Operations:
    """What ``ScheduledJob.cancel`` and ``ScheduledJob.reschedule`` call."""

    cancel: Callable[..., int]
    schedule_job: Callable[..., ScheduledJob]


_provided: Operations | None = None


def provide_operations(operations: Operations) -> None:
    """Called by ``DjangoFutureConfig.ready()`` with the ledger's and the scheduler's."""
    global _provided
    _provided = operations


def _operations() -> Operations:
    if _provided is None:
        raise ImproperlyConfigured(
            "django_future's app is not ready: add 'django_future' to INSTALLED_APPS and "
            "call django.setup() before using ScheduledJob.cancel() or reschedule()"
        )
    return _provided
