"""Tasks used by tests/tasks (imported by dotted path, also in runner processes).

Per-task options (``@task(retries=...)``) exist on Django 6.1 and with the backport, not
on 6.0: the tasks that need them are defined only where ``@task`` passes them on, and
the tests that use them skip elsewhere (``PER_TASK_OPTIONS``).
"""

from __future__ import annotations

import os
from typing import Any

import django

from django_future.backends.compat import FRAMEWORK, TaskContext, task
from tests.testapp.models import Order

# @task(**options) reaches the backend's task_class on Django 6.1 and in the backport.
PER_TASK_OPTIONS = FRAMEWORK == "django_tasks" or django.VERSION >= (6, 1)

seen: list[Any] = []  # what in-process calls saw


class Refused(Exception):
    """A task's own exception class, to find by its dotted path in TaskError."""


@task
def noop() -> None:
    return None


@task()
def add(a: int, b: int) -> int:
    return a + b


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task
async def async_add(a: int, b: int) -> int:
    return a + b


@task
def refuse(message: str = "no") -> None:
    raise Refused(message)


@task
def returns_set() -> Any:
    return {1, 2}


@task
def returns_nan() -> float:
    return float("nan")


@task
def returns_tuple() -> Any:
    return (1, "two", None)


@task(queue_name="emails", priority=5)
def send_email(to: str) -> str:
    return f"sent to {to}"


@task(takes_context=True)
def with_context(context: TaskContext, x: int) -> dict[str, Any]:
    result = context.task_result
    seen.append(context)
    return {
        "attempt": context.attempt,
        "id": result.id,
        "status": str(result.status),
        "worker_ids": list(result.worker_ids),
        "x": x,
    }


@task(takes_context=True)
async def async_with_context(context: TaskContext) -> int:
    return int(context.attempt)


@task(takes_context=True, backend="retrying")
def fails_first(context: TaskContext, succeed_on: int = 2) -> int:
    """Fails on attempts before ``succeed_on`` (the "retrying" backend retries twice)."""
    if context.attempt < succeed_on:
        raise Refused(f"attempt {context.attempt} fails on purpose")
    return int(context.attempt)


@task(takes_context=True)
def fails_once(context: TaskContext) -> dict[str, Any]:
    """Fails on its first attempt (retried if its backend's OPTIONS give retries)."""
    if context.attempt < 2:
        raise Refused(f"attempt {context.attempt} fails on purpose")
    return {"attempt": context.attempt}


@task
def write_then_fail(number: str) -> None:
    Order.objects.create(number=number)
    raise RuntimeError(f"failed after writing order {number}")


def plain(x: int) -> int:
    """A plain function: scheduled with schedule_job, it stays a plain job."""
    return x


async def plain_async(x: int) -> int:
    """A coroutine function scheduled with schedule_job: the runner runs it too."""
    return x * 2


if PER_TASK_OPTIONS:

    @task(retries=1, retry_delay="1s", expires="2h", atomic=True)
    def atomic_write_then_fail(number: str) -> None:
        Order.objects.create(number=number)
        raise RuntimeError(f"failed after writing order {number}")

    @task(expires=None)
    def never_expires() -> None:
        return None

    @task(unique_key="nightly-report", unique_while="active")
    def nightly_report() -> None:
        return None


# In a runner process started with TASKS_SIGNAL_LOG=<file>: one line per task signal
# received there, for tests/tasks/test_runner_processes.py.
if os.environ.get("TASKS_SIGNAL_LOG"):
    from django_future.backends.compat import task_enqueued, task_finished, task_started

    def _log_signal(signal_name: str) -> Any:
        def receive(sender: Any, task_result: Any, **kwargs: Any) -> None:
            with open(os.environ["TASKS_SIGNAL_LOG"], "a") as log:
                print(
                    signal_name,
                    sender.__name__,
                    task_result.id,
                    task_result.status,
                    os.getpid(),
                    file=log,
                )

        return receive

    for _name, _signal in (
        ("enqueued", task_enqueued),
        ("started", task_started),
        ("finished", task_finished),
    ):
        _signal.connect(_log_signal(_name), weak=False, dispatch_uid=f"log-{_name}")
