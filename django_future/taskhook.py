"""Where the runner meets Django's tasks without importing the task backend.

``django_future.backends.LedgerBackend`` enqueues a Django ``Task`` as a job whose
callable is the task's dotted path. That path imports a ``Task`` object, which is not
callable: something must know how to run it (``TaskContext``, coroutines, signals,
a return value that JSON can hold). That is the backend's business, and the runner
must not import the backend (it sits above the runner; ``tests/setup/test_layers.py``).

So this module, below both the scheduler and the runner, holds one slot. The backend
fills it when it is imported (``register``); the scheduler asks it whether an object
that is not callable is a task all the same (``accepts``), and the runner's executor
asks it for a callable that runs the task for a job (``wrap``) and tells it when the
attempt's outcome is in the ledger (``finished``). With the slot empty, nothing
changes: a plain function path stays a plain job.

It imports nothing of the package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from django_future.models import ScheduledJob

__all__ = ["TaskRunner", "accepts", "register", "registered"]


class TaskRunner(Protocol):
    """What the backend registers."""

    def accepts(self, target: object, dotted_path: str) -> bool:
        """Whether ``target``, imported from ``dotted_path``, is a task this runs."""

    def wrap(self, job: ScheduledJob, target: object) -> Callable[..., Any] | None:
        """A callable that runs the task ``target`` for ``job`` with the job's arguments
        (and returns a value JSON can hold), or None if ``target`` is no task of ours."""

    def finished(self, job: ScheduledJob) -> None:
        """The outcome of the job's attempt (completed, or failed and maybe retried) is
        recorded in the ledger. Must not raise."""


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
