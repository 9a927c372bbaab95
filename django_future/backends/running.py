"""What the runner calls for a job whose callable is a task, through
``django_future.taskhook``: run it, and send ``task_started`` and ``task_finished``.

Each signal carries a ``TaskResult``, which must be what ``get_result`` would read from
the ledger at that moment. Reading the ledger for them was most of a task's cost in a
runner: three ORM queries per task (the events before the call, the events and the row
after), 4.9 ms per no-op task against 0.74 ms for a no-op plain job. So the results are
built from what the runner holds, and the ledger is read only where that cannot tell:

- ``task_started``, on a task's first attempt: from the row the claim returned, with no
  query (``Reading.first_start``). A later attempt reads the events (earlier errors and
  runners are on them only).
- ``task_finished`` after the runner recorded the value the task returned: the started
  reading plus that ``completed`` event. Its time is the one thing not in hand: the
  runner's step that recorded it says it when that step also started a job (every event
  of one statement takes the statement's time, so the new job's ``execution_start`` is
  it); else (the last job of a run, ``-d``, an atomic task) one indexed read of it. Any
  other outcome (a failure, a retry) reads the ledger; a refused completion sends none.

The alias is the other thing a row does not hold: the ``scheduled`` event records the
backend a task was enqueued through. Without reading it, the runner takes the one
``LedgerBackend`` of its ``TASKS``, if it has exactly one and the task's own backend is
that alias: every task of such a process is enqueued through it (``enqueue`` records
its own alias). A task enqueued through an alias that this process does not configure
as a ``LedgerBackend`` is the exception: it would be refused (``InvalidTaskBackend``)
when read, and is run through the one alias instead. With several ``LedgerBackend``
aliases, the events are read, as before. The alias is found once per task backend
alias and kept until ``TASKS`` changes (``setting_changed``, as ``override_settings``
sends it).

``tests/tasks/test_signal_results.py`` compares every result a signal carries with
``get_result`` called from the receiver.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connection

from django_future import taskhook
from django_future.backends.backend import LedgerBackend, TaskReturnValueError, _task_of
from django_future.backends.compat import (
    InvalidTaskBackend,
    Task,
    TaskContext,
    TaskResultDoesNotExist,
    normalize_json,
    task_backends,
    task_finished,
    task_started,
)
from django_future.backends.results import Reading, read
from django_future.models import ScheduledJob
from django_future.sql import query

__all__ = ["RUNNER"]

logger = logging.getLogger("django_future.tasks")


# One encoder for every value: json.dumps with options builds one per call.
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False)


def _json_value(task: Any, value: Any) -> Any:
    """The task's return value as the ledger keeps it (JSON), or TaskReturnValueError."""
    if value is None:
        return None  # what most tasks return; JSON's null
    try:
        normalized = normalize_json(value)
        text = _ENCODER.encode(normalized)
        text.encode("utf-8")
        if "\\u0000" in text:
            raise ValueError("it contains a NUL character, which PostgreSQL cannot store")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise TaskReturnValueError(
            f"task {task.module_path} returned {type(value).__name__} {value!r:.200}, which "
            f"JSON cannot hold ({exc}); a task's return value is kept in the ledger as JSON"
        ) from exc
    return normalized


def _backend_of(reading: Reading, task: Any) -> LedgerBackend:
    """The backend the task was enqueued through (its alias is in the scheduled event)."""
    alias = reading.scheduled.get("task_backend") or task.backend
    backend = task_backends[alias]
    if not isinstance(backend, LedgerBackend):
        raise InvalidTaskBackend(
            f"task {task.module_path} was enqueued through TASKS[{alias!r}], which in this "
            f"process is {type(backend).__name__}, not django_future.backends.LedgerBackend"
        )
    return backend


def _only_alias(target: Task) -> str | None:
    """The alias a task of ``target`` was enqueued through, known without reading its
    ``scheduled`` event: the one ``LedgerBackend`` of ``TASKS``, if there is exactly
    one and it is the task's own backend; else None (see the module's docstring).
    Found once per backend alias until ``TASKS`` changes (``_tasks_changed``)."""
    known = _ALIASES  # a change of TASKS meanwhile replaces it: this answer is dropped
    try:
        return known[target.backend]
    except KeyError:
        pass
    found = known[target.backend] = _find_only_alias(target.backend)
    return found


def _find_only_alias(own: str) -> str | None:
    ours = []
    for alias in getattr(settings, "TASKS", {}):
        try:
            backend = task_backends[alias]
        except InvalidTaskBackend:
            return None  # a broken alias: let the reading say what it says
        if isinstance(backend, LedgerBackend):
            ours.append(alias)
    return ours[0] if len(ours) == 1 and ours[0] == own else None


_ALIASES: dict[str, str | None] = {}  # _only_alias, by a task's own backend alias


def _tasks_changed(*, setting: str, **kwargs: Any) -> None:
    global _ALIASES
    if setting == "TASKS":
        _ALIASES = {}


setting_changed.connect(_tasks_changed)


def _completed_at(job: ScheduledJob) -> Any:
    """When the completion the runner just recorded for ``job`` was appended: its event
    follows the row the runner holds (the completion is refused at any other seq)."""
    with connection.cursor() as cursor:
        cursor.execute(query("event_at"), {"job_id": job.pk, "seq": job.last_seq + 1})
        row = cursor.fetchone()
    if row is None:
        raise TaskResultDoesNotExist(f"job {job.pk} has no completion at seq {job.last_seq + 1}")
    return row[0]


class _Call:
    """One attempt of one task (taskhook.TaskCall): made by ``wrap``, called by the
    executor, then told that the attempt's outcome is in the ledger."""

    def __init__(self, job: ScheduledJob, target: Task) -> None:
        self.job = job
        self.target = target
        self.backend: LedgerBackend | None = None
        self.reading: Reading | None = None  # the ledger as task_started saw it
        self.task: Any = None  # the task of that result, for task_finished's too
        self.value: Any = None  # what the task returned, as JSON

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        job, target = self.job, self.target
        alias = _only_alias(target)
        reading = Reading.first_start(job, alias=alias) if alias is not None else None
        if reading is None:
            # A later attempt, or an alias to read: the row in hand is the job as its
            # started event left it, so only the events are read (one query).
            reading = Reading.of(job)
        backend = self.backend = _backend_of(reading, target)
        # The task's path is the job's, which the executor imported: no import again.
        task = self.task = _task_of(reading, job.pk, found=target)
        result = backend._result(task, reading)
        self.reading = reading
        task_started.send(type(backend), task_result=result)
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        self.value = _json_value(task, value)
        return self.value

    def finished(self, *, completed: bool, at: dt.datetime | None = None) -> None:
        job = self.job
        try:
            if completed and self.reading is not None and self.backend is not None:
                backend = self.backend
                done = self.reading.completed(at or _completed_at(job), self.value)
                result = backend._result(self.task, done)
            else:
                reading = read(job.pk)
                if reading is None:
                    raise TaskResultDoesNotExist(f"job {job.pk} has no scheduled event")
                backend = _backend_of(reading, self.target)
                result = backend._result(_task_of(reading, job.pk), reading)
        except Exception:
            logger.exception("task_finished for job %s not sent: its result is unreadable", job.pk)
            return
        for receiver, outcome in task_finished.send_robust(type(backend), task_result=result):
            if isinstance(outcome, BaseException):
                logger.error(
                    "task_finished receiver %r raised for job %s",
                    receiver,
                    job.pk,
                    exc_info=outcome,
                )


class _Runner:
    """What the runner calls for a job whose callable is a task (taskhook.TaskRunner)."""

    def accepts(self, target: object, dotted_path: str) -> bool:
        return isinstance(target, Task) and target.module_path == dotted_path

    def wrap(self, job: ScheduledJob, target: object) -> _Call | None:
        if not self.accepts(target, job.callable_name):
            return None
        assert isinstance(target, Task)  # noqa: S101 - accepts said so; for the type checker
        return _Call(job, target)


RUNNER = _Runner()
taskhook.register(RUNNER)
