"""Bad input at the Python API beside schedule_job: ``run_jobs`` (queue filters, ``now``)
and ``ScheduledJob.reschedule`` (``by``, and what it passes on to schedule_job). Each is
refused before anything runs or is written; the due job stays due."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from django_future import run_jobs, schedule_job
from django_future.config import ARGS_MAX_DEPTH
from tests.badinput import nested, refused
from tests.support import kinds

pytestmark = pytest.mark.django_db

RUN_ROWS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"queues": ["a\x00"]}, ValueError, "is not a queue name"),
    ({"queues": ["\ud800"]}, ValueError, "is not a queue name"),
    ({"exclude_queues": ["\udcff"]}, ValueError, "is not a queue name"),
    ({"queues": [""]}, ValueError, "is not a queue name"),
    ({"queues": [10**30]}, ValueError, "is not a queue name"),
    ({"queues": "emails"}, TypeError, "not the string"),
    ({"queues": []}, ValueError, "is empty"),
    ({"now": "5d"}, TypeError, "now must be a datetime"),
    ({"now": 10**30}, TypeError, "now must be a datetime"),
]


@pytest.mark.parametrize(
    ("options", "error", "match"), RUN_ROWS, ids=[ascii(r[0])[:40] for r in RUN_ROWS]
)
def test_run_jobs_refuses_bad_filters_and_runs_nothing(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    job = schedule_job("0s", "tests.handlers.record")
    with refused(error, match):
        run_jobs(**options)
    assert kinds(job) == ["scheduled"]


def test_a_naive_now_is_read_in_the_current_time_zone() -> None:
    """As documented for every time: a naive ``now`` is not refused but made aware."""
    job = schedule_job("0s", "tests.handlers.record", expires="1h")
    report = run_jobs(now=dt.datetime.now() + dt.timedelta(days=1))
    assert (len(report.completed), len(report.expired)) == (0, 1)
    assert kinds(job) == ["scheduled", "expired"]


RESCHEDULE_ROWS: list[tuple[dict[str, Any], str]] = [
    ({"by": "me\x00"}, "by must be a name"),
    ({"by": "\ud800"}, "by must be a name"),
    ({"by": "x" * 256}, "by must be a name"),
    ({"by": 5}, "by must be a name"),
    ({"date": "9999999d"}, "at most 1000 years"),
    ({"args": ["\x00"]}, "NUL"),
    ({"kwargs": {"deep": nested(ARGS_MAX_DEPTH)}}, "levels"),
]


@pytest.mark.parametrize(
    ("options", "match"),
    RESCHEDULE_ROWS,
    ids=[str(list(r[0]))[:20] + str(i) for i, r in enumerate(RESCHEDULE_ROWS)],
)
def test_reschedule_refuses_bad_input(options: dict[str, Any], match: str) -> None:
    job = schedule_job("1d", "tests.handlers.record")
    call = {"date": "0s", **options}
    with refused((ValueError, TypeError), match):  # type: ignore[arg-type]
        job.reschedule(**call)
    assert kinds(job) == ["scheduled"]
