"""Bad input at the django.tasks door: ``Task.enqueue`` and ``Task.using`` with our
LedgerBackend. Django checks some of it (priority range, queue names, naive run_after),
schedule_job the rest; either way the caller gets a clear error and nothing is written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from django_future.backends.compat import InvalidTask
from django_future.backends.options import LedgerTask
from django_future.scheduler import ARGS_MAX_DEPTH
from tests.badinput import nested, refused
from tests.tasks import tasks

pytestmark = pytest.mark.django_db

LEDGER_TASKS = isinstance(tasks.echo, LedgerTask)

# (label, what to call, error, message)
ROWS: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    ("arg NUL", lambda: tasks.echo.enqueue("a\x00"), TypeError, "NUL"),
    ("kwarg NUL", lambda: tasks.echo.enqueue(k={"x": ["\x00"]}), TypeError, "NUL"),
    ("kwarg name NUL", lambda: tasks.echo.enqueue(**{"k\x00": 1}), TypeError, "NUL"),
    ("arg surrogate", lambda: tasks.echo.enqueue("\ud800"), TypeError, "not valid Unicode"),
    ("arg bytes not UTF-8", lambda: tasks.echo.enqueue(b"\xff"), ValueError, "(?i)unsupported|utf"),
    ("arg too deep", lambda: tasks.echo.enqueue(nested(ARGS_MAX_DEPTH)), ValueError, "levels"),
    (
        "arg far too deep",
        lambda: tasks.echo.enqueue(nested(50_000)),
        ValueError,
        "nested too deeply",
    ),
    (
        "arg too large",
        lambda: tasks.echo.enqueue("x" * (1024 * 1024)),
        ValueError,
        "DJANGO_FUTURE_MAX_ARGS_BYTES",
    ),
    ("arg NaN", lambda: tasks.echo.enqueue(float("nan")), TypeError, "finite"),
    ("priority 101", lambda: tasks.echo.using(priority=101).enqueue(), InvalidTask, "priority"),
    (
        "priority overflowing",
        lambda: tasks.echo.using(priority=2**64).enqueue(),
        InvalidTask,
        "priority",
    ),
    (
        "priority negative overflowing",
        lambda: tasks.echo.using(priority=-(2**64)).enqueue(),
        InvalidTask,
        "priority",
    ),
    (
        "queue too long",
        lambda: tasks.echo.using(queue_name="q" * 101).enqueue(),
        InvalidTask,
        "(?i)queue",
    ),
    ("queue NUL", lambda: tasks.echo.using(queue_name="q\x00").enqueue(), InvalidTask, "(?i)queue"),
    (
        "naive run_after",
        lambda: tasks.echo.using(run_after=dt.datetime(2030, 1, 1)).enqueue(),
        InvalidTask,
        "aware",
    ),
    (
        "run_after year 9999 + 7d expiry",
        lambda: tasks.echo.using(run_after=dt.datetime.max.replace(tzinfo=dt.UTC)).enqueue(),
        ValueError,
        "out of range",
    ),
]
if LEDGER_TASKS:
    ROWS += [
        (
            "unique_key too long",
            lambda: tasks.echo.using(unique_key="k" * 256).enqueue(),
            InvalidTask,
            "at most 255",
        ),
        (
            "unique_key NUL",
            lambda: tasks.echo.using(unique_key="k\x00").enqueue(),
            InvalidTask,
            "NUL",
        ),
        (
            "unique_key surrogate",
            lambda: tasks.echo.using(unique_key="\udcff").enqueue(),
            InvalidTask,
            "not valid Unicode",
        ),
    ]


@pytest.mark.parametrize(("label", "call", "error", "match"), ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_at_enqueue_is_refused_and_nothing_is_written(
    label: str, call: Callable[[], Any], error: type[Exception], match: str
) -> None:
    with refused(error, match):
        call()


@pytest.mark.parametrize("result_id", ["abc", "-1", "0", str(2**63), "1\x00", "\ud800", "9" * 5000])
def test_get_result_of_an_id_that_cannot_be_a_job_says_so(result_id: str) -> None:
    from django_future.backends.compat import TaskResultDoesNotExist

    with refused(TaskResultDoesNotExist, "no task result"):
        tasks.echo.get_result(result_id)
