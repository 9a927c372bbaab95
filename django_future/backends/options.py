"""The backend's OPTIONS and the per-task options of ``LedgerTask``.

``TASKS[alias]["OPTIONS"]`` sets the defaults of every task of that backend; on Django
6.1 and with the ``django-tasks`` backport, ``@task(retries=..., ...)`` sets them per
task (``LedgerTask``). The names and forms are ``schedule_job``'s:

- ``retries``: more attempts after a failure (a whole number, 0 or more; default 0);
- ``retry_delay``, ``retry_max_delay``: the backoff between attempts, a ``timedelta`` or
  a duration string such as ``"30s"`` (defaults: the package's, 30 s and 1 h);
- ``expires``: how long after ``run_after`` (or the enqueue) a task that has not run
  gives up, as a duration, or ``None`` for never (default ``"7d"``, as ``schedule_job``);
- ``atomic``: run the task in one transaction with its completion (default False);
- ``lock``: a lock name (default None): no two runs of tasks with that lock overlap, on
  any runner (``schedule_job(lock=...)``). A task's own: Django's ``enqueue`` takes no
  per-call options, so ``@task(lock="reports")`` makes that task run one at a time, and
  tasks given the same name share it.

Two more fields of ``LedgerTask`` are no backend OPTIONS, since a key names one piece of
work and not a backend's tasks: ``unique_key`` and ``unique_while``, ``schedule_job``'s
(django_future/unique.py). They are set with ``task.using(unique_key=...)``, which our
``task_class`` extends on every Django version, or for every call of a task with
``@task(unique_key=...)`` where ``@task`` passes them on (Django 6.1, the backport).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from django_future import locks
from django_future.backends.compat import Task
from django_future.scheduler import parse_duration
from django_future.unique import unique_data

__all__ = ["DEFAULT", "OPTION_DEFAULTS", "LedgerTask", "Options", "problems"]


class _Default(enum.Enum):
    DEFAULT = "default"

    def __repr__(self) -> str:
        return "DEFAULT"


# "Not set on the task: the backend's OPTIONS decide." An enum member, so that a task
# pickles and compares as the same value (None already means "never" for expires).
DEFAULT = _Default.DEFAULT

OPTION_DEFAULTS: dict[str, Any] = {
    "retries": 0,
    "retry_delay": None,
    "retry_max_delay": None,
    "expires": "7d",
    "atomic": False,
    "lock": None,
}


def _duration(value: object) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        if value < dt.timedelta(0):
            raise ValueError(f"{value!r} is negative")
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"{value!r} is not a duration; use a timedelta or a string such as '30s'")


def problems(options: Mapping[str, Any], *, where: str) -> list[str]:
    """What is wrong with these options (an empty list if nothing), each said in full."""
    found = []
    for name in sorted(set(options) - set(OPTION_DEFAULTS)):
        found.append(
            f"{where}: unknown option {name!r}; the options are {', '.join(OPTION_DEFAULTS)}"
        )
    retries = options.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        found.append(f"{where}: retries must be a whole number, 0 or more, not {retries!r}")
    delays: dict[str, dt.timedelta] = {}
    for name in ("retry_delay", "retry_max_delay"):
        value = options.get(name)
        if value is None:
            continue
        try:
            delays[name] = _duration(value)
        except ValueError as exc:
            found.append(f"{where}: {name}: {exc}")
    if len(delays) == 2 and delays["retry_max_delay"] < delays["retry_delay"]:
        found.append(f"{where}: retry_max_delay is shorter than retry_delay")
    expires = options.get("expires", "7d")
    if expires is not None:
        try:
            _duration(expires)
        except ValueError as exc:
            found.append(f"{where}: expires: {exc} (or None, for never)")
    atomic = options.get("atomic", False)
    if not isinstance(atomic, bool):
        found.append(f"{where}: atomic must be True or False, not {atomic!r}")
    try:
        locks.check_lock(options.get("lock"))
    except ValueError as exc:
        found.append(f"{where}: {exc}")
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """A task's options, once its own and its backend's are merged."""

    retries: int
    retry_delay: dt.timedelta | str | None
    retry_max_delay: dt.timedelta | str | None
    expires: dt.timedelta | str | None
    atomic: bool
    lock: str | None

    @classmethod
    def merged(cls, backend: Mapping[str, Any], task: object) -> Options:
        values = {**OPTION_DEFAULTS, **backend}
        for name in OPTION_DEFAULTS:
            own = getattr(task, name, DEFAULT)
            if own is not DEFAULT:
                values[name] = own
        return cls(**values)

    def schedule_job_kwargs(self) -> dict[str, Any]:
        """``schedule_job``'s keyword arguments for these options."""
        retrying = self.retries > 0
        return {
            "expires": self.expires,
            "retries": self.retries,
            # schedule_job refuses a backoff without retries: a task that turns
            # retries off keeps its backend's delays, unused.
            "retry_delay": self.retry_delay if retrying else None,
            "retry_max_delay": self.retry_max_delay if retrying else None,
            "atomic": self.atomic,
            "lock": self.lock,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerTask(Task):
    """The backend's ``task_class``: a Django ``Task`` with the ledger's options.

    Each is ``DEFAULT`` unless given to ``@task(...)`` (Django 6.1, or the backport):
    then the backend's OPTIONS decide. Checked when the task is made (``InvalidTask``).
    """

    retries: int | _Default = DEFAULT
    retry_delay: dt.timedelta | str | _Default | None = DEFAULT
    retry_max_delay: dt.timedelta | str | _Default | None = DEFAULT
    expires: dt.timedelta | str | _Default | None = DEFAULT
    atomic: bool | _Default = DEFAULT
    lock: str | _Default | None = DEFAULT
    # Not options: no backend default. None: a task without a key.
    unique_key: str | None = None
    unique_while: str = "pending"

    def using(
        self,
        *,
        unique_key: str | _Default | None = DEFAULT,
        unique_while: str | _Default = DEFAULT,
        **changes: Any,
    ) -> LedgerTask:
        """Django's ``using()`` (``priority``, ``queue_name``, ``run_after``, ``backend``),
        and the unique key this task's next enqueues ask for, with ``unique_while``:
        ``task.using(unique_key=f"sync-user-{user.pk}")``. ``unique_key=None`` takes
        the key away (and ``unique_while`` back to ``"pending"``)."""
        # Task.using by name: slots=True makes a new class, which zero-argument super()
        # does not know.
        task = cast("LedgerTask", Task.using(self, **changes))
        own: dict[str, Any] = {}
        if unique_key is not DEFAULT:
            own["unique_key"] = unique_key
            if unique_key is None and unique_while is DEFAULT:
                own["unique_while"] = "pending"  # no key: nothing to hold, so the default
        if unique_while is not DEFAULT:
            own["unique_while"] = unique_while
        return dataclasses.replace(task, **own) if own else task

    def unique_problems(self) -> list[str]:
        """What is wrong with this task's unique key (an empty list if nothing)."""
        try:
            unique_data(self.unique_key, self.unique_while)
        except ValueError as exc:
            return [f"task {self.module_path}: {exc}"]
        return []

    def own_options(self) -> dict[str, Any]:
        """The options set on this task (not DEFAULT)."""
        return {
            name: getattr(self, name)
            for name in OPTION_DEFAULTS
            if getattr(self, name) is not DEFAULT
        }
