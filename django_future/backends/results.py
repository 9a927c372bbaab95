"""A job's ledger, read as a Django ``TaskResult``.

Status comes from the job's row (the projection), the rest from its events:

=============================================  ============
job status (``ScheduledJob.status``)           TaskResult
=============================================  ============
``scheduled`` (new, or a retry pending)        READY
``claimed``, ``running``                       RUNNING
``complete`` (also once ``-d`` removed it)     SUCCESSFUL
``failed``, ``expired``, ``cancelled``         FAILED
=============================================  ============

- ``enqueued_at``: the ``scheduled`` event's time; ``started_at`` the first ``started``,
  ``last_attempted_at`` the last; ``finished_at`` the final event's (``completed``,
  ``failed``, ``abandoned``, ``expired``, ``cancelled``), once the task is finished.
  All are the database's clock.
- ``worker_ids``: the runner (``host:pid``) of each attempt, in order; an attempt handed
  back unstarted (``released``) does not count, as the ledger does not count it.
- ``errors``: one ``TaskError`` per failed attempt, in order: the exception's class and
  traceback for ``failed``, ``django_future.backends.JobAbandoned`` when the runner died,
  and a last one naming ``JobExpired`` or ``JobCancelled`` for a task that never ran.
- ``return_value``: the ``completed`` event's JSON ``result``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from django.db.models.base import ModelState

from django_future.backends.compat import TaskError, TaskResultStatus
from django_future.models import EventKind, JobEvent, ScheduledJob

__all__ = ["STATUS", "JobAbandoned", "JobCancelled", "JobExpired", "Reading", "read"]


class JobCancelled(Exception):
    """The task's job was cancelled (``job.cancel()``, the admin) before it ran."""


class JobExpired(Exception):
    """The task's job was not run before its expiry (the ``expires`` option)."""


class JobAbandoned(Exception):
    """The runner of an attempt died (its lease lapsed) before it recorded an outcome."""


def _path(cls: type[BaseException]) -> str:
    # Named where users import them from (django_future/backends/__init__.py).
    return f"django_future.backends.{cls.__qualname__}"


STATUS: dict[str, Any] = {
    ScheduledJob.STATUS_SCHEDULED: TaskResultStatus.READY,
    ScheduledJob.STATUS_CLAIMED: TaskResultStatus.RUNNING,
    ScheduledJob.STATUS_RUNNING: TaskResultStatus.RUNNING,
    ScheduledJob.STATUS_COMPLETE: TaskResultStatus.SUCCESSFUL,
    ScheduledJob.STATUS_FAILED: TaskResultStatus.FAILED,
    ScheduledJob.STATUS_EXPIRED: TaskResultStatus.FAILED,
    ScheduledJob.STATUS_CANCELLED: TaskResultStatus.FAILED,
}

_OUTCOMES = frozenset(
    {
        EventKind.COMPLETED,
        EventKind.FAILED,
        EventKind.ABANDONED,
        EventKind.EXPIRED,
        EventKind.CANCELLED,
    }
)


def exception_class_path(data: dict[str, Any]) -> str:
    """The failed attempt's exception class, as a dotted path.

    From the event's ``exception_class`` when it has one; events written without it
    name the class on the traceback's last line (``module.Class: message``, builtins
    without a module)."""
    recorded = data.get("exception_class")
    if isinstance(recorded, str) and recorded:
        return recorded
    lines = str(data.get("error") or data.get("exception") or "").strip().splitlines()
    head = lines[-1].partition(":")[0].strip() if lines else ""
    if not head or " " in head:
        return "builtins.Exception"
    return head if "." in head else f"builtins.{head}"


class Reading:
    """One job as a task result: its row (None once ``-d`` removed it) and its events."""

    def __init__(self, job_id: int, row: ScheduledJob | None, events: Sequence[JobEvent]):
        self.job_id = job_id
        self.row = row
        self.events = list(events)
        self.scheduled = self.events[0].data if self.events else {}
        self._fields: dict[str, Any] | None = None  # fields(), once read

    @classmethod
    def new(cls, job: ScheduledJob) -> Reading:
        """A job just scheduled, from its row: its one event is its ``scheduled``, whose
        time is the row's ``created_at`` and whose data is what the row was folded from."""
        scheduled = _event(
            job_id=job.pk,
            seq=1,
            kind=EventKind.SCHEDULED,
            at=job.created_at,
            data={"callable_name": job.callable_name, "args": job.args, "kwargs": job.kwargs},
        )
        return cls(job.pk, job, [scheduled])

    @classmethod
    def of(cls, job: ScheduledJob) -> Reading:
        """A job whose row the caller holds, current: only its events are read."""
        return cls(job.pk, job, _events(job.pk))

    @classmethod
    def first_start(cls, job: ScheduledJob, *, alias: str) -> Reading | None:
        """A job its runner has just started for the first time, from the row in hand,
        without a query; None if the row cannot tell its events (read them instead).

        A running row at seq 2 has two events, its ``scheduled`` and this ``started``:
        the first is the row's ``created_at``, callable and arguments; the second its
        ``execution_start`` and ``runner`` (the fold copies them from the events). Two
        things of the ``scheduled`` event are not on the row, and the caller vouches
        for them: ``alias``, the backend it was enqueued through (``task_backend``);
        and ``run_after``, which was given if the job was due at another time than it
        was made ("now" is the statement's time, which ``created_at`` is too)."""
        if (
            job.last_seq != 2
            or job.status != ScheduledJob.STATUS_RUNNING
            or job.attempts != 1
            or job.execution_start is None
        ):
            return None
        data: dict[str, Any] = {
            "callable_name": job.callable_name,
            "args": job.args,
            "kwargs": job.kwargs,
            "task_backend": alias,
        }
        if job.time_slot_start != job.created_at:
            data["run_after"] = job.time_slot_start.isoformat()
        scheduled = _event(
            job_id=job.pk, seq=1, kind=EventKind.SCHEDULED, at=job.created_at, data=data
        )
        started = _event(
            job_id=job.pk,
            seq=2,
            kind=EventKind.STARTED,
            at=job.execution_start,
            runner=job.runner,
            data={},
        )
        return cls(job.pk, job, [scheduled, started])

    def completed(self, at: dt.datetime, result: Any) -> Reading:
        """This reading of a running job once its ``completed`` event, at ``at`` with
        ``result`` (the return value as JSON), is the next event; nothing is read.
        The row is a copy, as the fold leaves it (``complete``): the caller's is not
        touched."""
        if self.row is None or self.row.status != ScheduledJob.STATUS_RUNNING:
            raise ValueError(f"job {self.job_id} is not running in this reading")
        row = _new_job()
        row.__dict__.update(self.row.__dict__)  # copy.copy, without pickling's detour
        row.status = ScheduledJob.STATUS_COMPLETE
        row.execution_end = at
        row.last_seq += 1
        done = _event(
            job_id=self.job_id,
            seq=row.last_seq,
            kind=EventKind.COMPLETED,
            at=at,
            runner=row.runner,
            data={"result": result},
        )
        reading = Reading(self.job_id, row, [*self.events, done])
        # Its fields are this reading's with the job finished by that event (which
        # starts no attempt and records no error): no need to go over the events again.
        fields = self.fields()
        fields.update(status=TaskResultStatus.SUCCESSFUL, finished_at=at, _return_value=result)
        reading._fields = fields
        return reading

    @property
    def status(self) -> Any:
        if self.row is not None:
            return STATUS[self.row.status]
        # The row is gone (runscheduledjobs -d): the last event before "deleted" says.
        last = [e.kind for e in self.events if e.kind in _OUTCOMES]
        if last and last[-1] == EventKind.COMPLETED:
            return TaskResultStatus.SUCCESSFUL
        return TaskResultStatus.FAILED

    def fields(self) -> dict[str, Any]:
        """The TaskResult's fields read from the ledger (all but task, id, backend): a
        new dict and new lists at each call, for a new TaskResult (the runner makes
        one from a reading for task_started, and one for task_finished from its
        ``completed``)."""
        if self._fields is None:
            self._fields = self._read_fields()
        known = self._fields
        return {**known, "errors": list(known["errors"]), "worker_ids": list(known["worker_ids"])}

    def _read_fields(self) -> dict[str, Any]:
        started: list[JobEvent] = []
        errors: list[Any] = []
        finished_at: dt.datetime | None = None
        value: Any = None
        for e in self.events:
            if e.kind == EventKind.STARTED:
                started.append(e)
            elif e.kind == EventKind.RELEASED and started:
                started.pop()  # handed back before it was called: not an attempt
            elif e.kind == EventKind.FAILED:
                errors.append(
                    TaskError(
                        exception_class_path=exception_class_path(e.data),
                        traceback=str(e.data.get("error") or e.data.get("exception") or ""),
                    )
                )
            elif e.kind == EventKind.ABANDONED:
                errors.append(
                    TaskError(
                        exception_class_path=_path(JobAbandoned),
                        traceback=str(
                            e.data.get("error")
                            or f"runner {e.data.get('lost_runner')} died during the attempt"
                        ),
                    )
                )
            elif e.kind == EventKind.EXPIRED:
                errors.append(
                    TaskError(
                        exception_class_path=_path(JobExpired),
                        traceback=(
                            f"{_path(JobExpired)}: not run before its expiry "
                            f"({e.data.get('time_slot_end')})"
                        ),
                    )
                )
            elif e.kind == EventKind.CANCELLED:
                errors.append(
                    TaskError(
                        exception_class_path=_path(JobCancelled),
                        traceback=(
                            f"{_path(JobCancelled)}: cancelled by {e.data.get('by')}: "
                            f"{e.data.get('reason') or ''}"
                        ),
                    )
                )
            elif e.kind == EventKind.COMPLETED:
                value = e.data.get("result")
            if e.kind in _OUTCOMES:
                finished_at = e.at
        status = self.status
        done = status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
        return {
            "status": status,
            "enqueued_at": self.events[0].at,
            "started_at": started[0].at if started else None,
            "last_attempted_at": started[-1].at if started else None,
            "finished_at": finished_at if done else None,
            "errors": errors,
            "worker_ids": [str(e.runner) for e in started],
            "_return_value": value if status == TaskResultStatus.SUCCESSFUL else None,
        }


def _new_job() -> ScheduledJob:
    return ScheduledJob.__new__(ScheduledJob)


@functools.cache
def _event_defaults() -> dict[str, Any]:
    """What ``JobEvent()`` sets on the fields it is not given (``id`` None, ``hash``...),
    but for those whose default is made per event (``data``): ``_event`` is given them."""
    fields = JobEvent._meta.concrete_fields
    return {
        f.attname: f.get_default() for f in fields if not (f.has_default() and callable(f.default))
    }


def _event(**fields: Any) -> JobEvent:
    """``JobEvent(**fields)``, an event held in memory, made without ``Model.__init__``,
    which took most of the time of the readings a runner makes per task (three events
    per task). Every field whose default is a new object (``data``) must be given."""
    event = JobEvent.__new__(JobEvent)
    event.__dict__.update(_event_defaults(), _state=ModelState(), **fields)
    return event


def _events(job_id: int) -> list[JobEvent]:
    return list(JobEvent.objects.filter(job_id=job_id).order_by("seq"))


def read(job_id: int) -> Reading | None:
    """The job's ledger, or None if it has no events (unknown, or pruned)."""
    events = _events(job_id)
    if not events or events[0].kind != EventKind.SCHEDULED:
        return None
    row = ScheduledJob.objects.filter(pk=job_id).first()
    return Reading(job_id, row, events)
