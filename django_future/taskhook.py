"""Where the runner meets Django's tasks without importing the task backend.

``django_future.backends.LedgerBackend`` enqueues a Django ``Task`` as a job whose
callable is the task's dotted path. That path imports a ``Task`` object, which is not
callable: something must know how to run it (``TaskContext``, coroutines, signals,
a return value that JSON can hold). That is the backend's business, and the runner
must not import the backend (it sits above the runner; ``tests/setup/test_layers.py``).

So this module, below both the scheduler and the runner, holds one slot. The backend
fills it when it is imported (``register``); the scheduler asks it whether an object
that is not callable is a task all the same (``accepts``), and the runner's executor
asks it for the attempt of a task for a job (``wrap``): a callable that runs the task,
which the executor tells when the attempt's outcome is in the ledger (``finished``,
for ``task_finished``). With the slot empty, nothing changes: a plain function path
stays a plain job.

It imports nothing of the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import datetime as dt

    from django_future.models import ScheduledJob

__all__ = ["TaskCall", "TaskRunner", "accepts", "register", "registered"]


class TaskCall(Protocol):
    """One attempt of one task, as ``TaskRunner.wrap`` made it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task with the job's arguments; return a value JSON can hold."""

    def finished(self, *, completed: bool, at: dt.datetime | None = None) -> None:
        """The attempt's outcome is in the ledger. ``completed``: it is the ``completed``
        event of the value this call returned, appended at the seq that follows the job's
        row as the runner held it, at ``at`` if the runner knows when (else None);
        otherwise (a failure, maybe a retry) the ledger says. Must not raise."""


class TaskRunner(Protocol):
    """What the backend registers."""

    def accepts(self, target: object, dotted_path: str) -> bool:
        """Whether ``target``, imported from ``dotted_path``, is a task this runs."""

    def wrap(self, job: ScheduledJob, target: object) -> TaskCall | None:
        """The attempt of the task ``target`` for ``job`` (a callable, called with the
        job's arguments), or None if ``target`` is no task of ours."""


_registered: TaskRunner | None = None


def register(runner: TaskRunner | None) -> None:
    """Fill the slot (the backend does, when imported); None empties it."""
    global _registered
    _registered = runner


def registered() -> TaskRunner | None:
    return _registered


def accepts(target: object, dotted_path: str) -> bool:
    """True if the registered runner runs ``target`` as a task."""
    return _registered is not None and _registered.accepts(target, dotted_path)
