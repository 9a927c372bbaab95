"""``LedgerBackend``: Django's task API over ``schedule_job`` and the ledger.

A task is a job: ``enqueue`` calls ``schedule_job`` with the task's dotted path, its
arguments, ``run_after`` (now if None), its queue and priority, and the backend's and the
task's options; the job's ``scheduled`` event records the backend alias. The result id
is the job id. ``get_result`` reads the ledger (``results.py``), from any process.

The runner runs a task through ``django_future.taskhook``, which ``running.py`` fills
when the package is imported: the runner never imports the backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from django_future import config
from django_future.backends.compat import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    normalize_json,
    task_enqueued,
)
from django_future.backends.options import LedgerTask, Options, problems
from django_future.backends.results import Reading, read
from django_future.models import ScheduledJob
from django_future.scheduler import ARGS_MAX_DEPTH, schedule_job

__all__ = ["LedgerBackend", "TaskReturnValueError"]


class TaskReturnValueError(TypeError):
    """A task returned a value that JSON cannot hold: the attempt fails with this."""


class LedgerBackend(BaseTaskBackend):
    """Django task backend: each task is a ``django_future`` job in the ledger."""

    task_class = LedgerTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    # --- configuration ------------------------------------------------------------
    # OPTIONS are checked by the system check (django_future.E010) and again at each
    # enqueue (ImproperlyConfigured), not here: Django makes backends lazily, and a
    # backend that raised when made would stop `manage.py check` with a traceback.

    def _option_problems(self) -> list[str]:
        where = f"TASKS[{self.alias!r}]['OPTIONS']"
        if not isinstance(self.options, Mapping):
            return [f"{where} must be a dict, not {type(self.options).__name__}"]
        return problems(self.options, where=where)

    def _options(self, task: object) -> Options:
        found = self._option_problems()
        if found:
            raise ImproperlyConfigured("; ".join(found))
        return Options.merged(self.options, task)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        found = list(super().check(**kwargs))
        for problem in self._option_problems():
            found.append(
                checks.Error(
                    problem,
                    hint="docs/tasks.md lists the options of django_future.backends.LedgerBackend.",
                    id="django_future.E010",
                )
            )
        if not apps.is_installed("django_future"):
            found.append(
                checks.Error(
                    f"TASKS[{self.alias!r}] uses django_future.backends.LedgerBackend, "
                    "but 'django_future' is not in INSTALLED_APPS",
                    hint="Add 'pgtrigger' and 'django_future' to INSTALLED_APPS.",
                    id="django_future.E011",
                )
            )
        return found

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        if not isinstance(task, LedgerTask):
            return
        found = problems(task.own_options(), where=f"task {task.module_path}")
        found += task.unique_problems()
        if not found and not self._option_problems():
            # Each is right alone; together with the backend's, the backoff must be too.
            merged = Options.merged(self.options, task).schedule_job_kwargs()
            if merged["retries"]:
                # What schedule_job will use: the package's default for what is unset.
                delays = {
                    "retry_delay": merged["retry_delay"] or config.retry_delay(),
                    "retry_max_delay": merged["retry_max_delay"] or config.retry_max_delay(),
                }
                if merged["retry_max_delay"] is None:
                    delays.pop("retry_max_delay")  # the default grows to fit the delay
                found = problems(delays, where=f"task {task.module_path} with TASKS' OPTIONS")
        if found:
            raise InvalidTask("; ".join(found))

    # --- enqueue and results -------------------------------------------------------

    def enqueue(self, task: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        self.validate_task(task)
        options = self._options(task)
        # Django's check of the arguments first (TypeError "Unsupported type", or
        # ValueError), then schedule_job's (TypeError: NaN, NUL characters...).
        try:
            json_args = normalize_json(list(args))
            json_kwargs = normalize_json(dict(kwargs))
        except RecursionError:
            # Django's check recurses; schedule_job would refuse the depth anyway.
            raise ValueError(
                "the task's arguments are nested too deeply; job arguments may nest lists "
                f"and dicts at most {ARGS_MAX_DEPTH} levels"
            ) from None
        job = _schedule(task, json_args, json_kwargs, options, self.alias)
        if not job.created:
            # A job held the task's unique key: its result, as it stands (it may have
            # started, if it holds its key while active), and no task_enqueued, since
            # nothing was. The task is the holder's, as get_result would give it.
            reading = read(job.pk)
            if reading is not None:
                return self._result(_task_of(reading, job.pk), reading)
        # A new job's result needs no read: its scheduled event is all there is, and
        # the row schedule_job returned holds its time (one query per enqueue).
        result = self._result(task, Reading.new(job))
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: Any) -> Any:
        job_id = _job_id(result_id)
        reading = read(job_id) if job_id is not None else None
        if reading is None:
            raise TaskResultDoesNotExist(f"no task result {result_id!r}")
        return self._result(_task_of(reading, result_id), reading)

    def _result(self, task: Any, reading: Reading) -> Any:
        fields = reading.fields()
        value = fields.pop("_return_value")
        result: Any = TaskResult(
            task=task,
            id=str(reading.job_id),
            args=list(reading.scheduled.get("args", [])),
            kwargs=dict(reading.scheduled.get("kwargs", {})),
            backend=str(reading.scheduled.get("task_backend") or task.backend),
            **fields,
        )
        object.__setattr__(result, "_return_value", value)
        return result


def _job_id(result_id: object) -> int | None:
    """The job id in a result id ("42", or 42), or None if it cannot be one (a bigint)."""
    value: int | None = None
    if isinstance(result_id, int) and not isinstance(result_id, bool):
        value = result_id
    elif (
        isinstance(result_id, str)
        and result_id.isascii()
        and result_id.isdigit()
        and len(result_id) <= 19  # a bigint; and int() refuses over 4300 digits
    ):
        value = int(result_id)
    return value if value is not None and 0 < value < 2**63 else None


def _schedule(task: Any, args: Any, kwargs: Any, options: Options, alias: str) -> ScheduledJob:
    """The one call of schedule_job for a task."""
    origin: dict[str, Any] = {"task_backend": alias}
    if task.run_after is not None:
        origin["run_after"] = task.run_after.isoformat()
    return schedule_job(
        task.run_after if task.run_after is not None else "0s",
        task.module_path,
        args=args,
        kwargs=kwargs,
        _origin=origin,
        queue=task.queue_name,
        priority=task.priority,
        # A task made by another task_class has neither: no key.
        unique_key=getattr(task, "unique_key", None),
        unique_while=getattr(task, "unique_while", "pending"),
        **options.schedule_job_kwargs(),
    )


def _recorded_placement(reading: Reading) -> tuple[str, int]:
    if reading.row is not None:
        return reading.row.queue, reading.row.priority
    # The row is gone (-d): the scheduled event has them, unless they were the defaults.
    data = reading.scheduled
    return str(data.get("queue", "default")), int(data.get("priority", 0))


def _due_at(reading: Reading) -> Any:
    """When the ``scheduled`` event made the job due, if not when it was made; else None."""
    opens = reading.scheduled.get("time_slot_start")
    due = parse_datetime(opens) if isinstance(opens, str) else None
    return due if due is not None and due != reading.events[0].at else None


def _task_of(reading: Reading, result_id: object, *, found: Any = None) -> Any:
    """The task of a job, as it was enqueued: the module's task with the job's queue,
    priority, run_after and backend. TaskResultDoesNotExist if the job is no task.
    ``found``: the task its path imports, if the caller has imported it (the runner)."""
    path = str(reading.scheduled.get("callable_name", ""))
    if found is None or getattr(found, "module_path", None) != path:
        try:
            found = import_string(path)
        except (ImportError, ValueError) as exc:
            raise TaskResultDoesNotExist(
                f"result {result_id!r}: its task {path!r} cannot be imported ({exc})"
            ) from exc
    if not isinstance(found, Task):
        raise TaskResultDoesNotExist(f"result {result_id!r}: job of {path!r} is not a task")
    queue, priority = _recorded_placement(reading)
    alias = reading.scheduled.get("task_backend") or found.backend
    changes: dict[str, Any] = {"queue_name": queue, "priority": priority}
    if alias in getattr(settings, "TASKS", {}):
        changes["backend"] = alias
    run_after = reading.scheduled.get("run_after")
    if run_after:
        changes["run_after"] = parse_datetime(run_after)
    elif (due := _due_at(reading)) is not None:
        # Scheduled with schedule_job for a later (or earlier) time than it was made: the
        # task was to run after that time. This is also what the runner can tell from
        # the row (Reading.first_start), which does not say how the job was scheduled.
        changes["run_after"] = due
    if isinstance(found, LedgerTask) and "unique_key" in reading.scheduled:
        changes["unique_key"] = reading.scheduled["unique_key"]
        changes["unique_while"] = reading.scheduled.get("unique_while", "pending")
    if all(getattr(found, name) == value for name, value in changes.items()):
        # Enqueued as it is defined: using() would make an equal copy, and validate it
        # again, for every result read (twice per task in a runner).
        return found
    return found.using(**changes)
