"""The results that task_started and task_finished carry are what get_result reads.

The runner builds them from what it holds (django_future/backends/running.py) instead
of reading the ledger: the row its claim returned, the value the task returned, the time
of its step. Each receiver here calls get_result for the same id at that moment, and the
two must agree on every field. Each scenario runs with one LedgerBackend in TASKS (the
runner then knows the alias without reading the ``scheduled`` event) and with two (it
reads the events before the call).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_future import schedule_job
from django_future.backends.compat import (
    TaskResultStatus,
    task_backends,
    task_finished,
    task_started,
)
from django_future.backends.results import _event
from django_future.models import EventKind, JobEvent, ScheduledJob
from django_future.runner import run_jobs
from tests.support import db_now, event, later
from tests.tasks import tasks

pytestmark = pytest.mark.django_db

LEDGER = "django_future.backends.LedgerBackend"
OPTIONS = {"retries": 1, "retry_delay": "1s"}
ONE = {"default": {"BACKEND": LEDGER, "QUEUES": ["default", "emails"], "OPTIONS": OPTIONS}}
TWO = {**ONE, "other": {"BACKEND": LEDGER}}


@pytest.fixture(params=["one LedgerBackend", "two LedgerBackends"])
def backends(request: pytest.FixtureRequest) -> Iterator[str]:
    with override_settings(TASKS=ONE if request.param == "one LedgerBackend" else TWO):
        yield request.param


Carried = list[tuple[str, Any, Any]]  # (signal, the result it carried, get_result's)


@pytest.fixture
def carried(backends: str) -> Iterator[Carried]:
    got: Carried = []

    def receiver(name: str) -> Any:
        def receive(sender: Any, task_result: Any, **kwargs: Any) -> None:
            read = task_backends[task_result.backend].get_result(task_result.id)
            got.append((name, task_result, read))

        return receive

    started, finished = receiver("started"), receiver("finished")
    task_started.connect(started, dispatch_uid="test-carried-started")
    task_finished.connect(finished, dispatch_uid="test-carried-finished")
    yield got
    task_started.disconnect(dispatch_uid="test-carried-started")
    task_finished.disconnect(dispatch_uid="test-carried-finished")


def assert_same(carried: Any, read: Any) -> None:
    """Field by field (a message names the first that differs), then as a whole."""
    for field in dataclasses.fields(carried):
        assert getattr(carried, field.name) == getattr(read, field.name), field.name
    assert carried.attempts == read.attempts
    assert carried == read


def check(got: Carried) -> None:
    assert got, "no signal was received"
    for _, carried, read in got:
        assert_same(carried, read)


def statuses(got: Carried, result: Any) -> list[tuple[str, Any]]:
    return [(name, c.status) for name, c, _ in got if c.id == result.id]


def job_of(result: Any) -> ScheduledJob:
    return ScheduledJob.objects.get(pk=int(result.id))


def test_successes(carried: Carried) -> None:
    past = db_now() - dt.timedelta(hours=1)
    enqueued = [
        tasks.add.enqueue(2, 3),
        tasks.echo.enqueue(1, "é", k=[None, 1.5, {"b": 2, "a": True}]),
        tasks.send_email.enqueue("ann@example.com"),  # queue "emails", priority 5
        tasks.add.using(run_after=past).enqueue(1, 1),
        tasks.with_context.enqueue(7),
        tasks.noop.enqueue(),  # the last: no claim follows its completion
    ]
    run_jobs()
    check(carried)
    for result in enqueued:
        assert statuses(carried, result) == [
            ("started", TaskResultStatus.RUNNING),
            ("finished", TaskResultStatus.SUCCESSFUL),
        ]
    finished = {c.id: c for name, c, _ in carried if name == "finished"}
    first = finished[enqueued[0].id]
    assert first.return_value == 5
    assert first.finished_at == event(job_of(first), "completed").at
    assert first.worker_ids == [event(job_of(first), "started").runner]
    assert finished[enqueued[1].id].return_value == {
        "args": [1, "é"],
        "kwargs": {"k": [None, 1.5, {"b": 2, "a": True}]},
    }
    assert finished[enqueued[2].id].task.queue_name == "emails"
    assert finished[enqueued[3].id].task.run_after == past
    assert finished[enqueued[5].id].task.run_after is None
    # The finished result is built from the started one's reading: it has lists of
    # its own, as a result read from the ledger has.
    started = {c.id: c for name, c, _ in carried if name == "started"}
    assert started[first.id].worker_ids is not first.worker_ids
    assert started[first.id].errors is not first.errors


def test_a_task_scheduled_with_schedule_job(carried: Carried) -> None:
    past = db_now() - dt.timedelta(minutes=5)
    job = schedule_job(past, "tests.tasks.tasks.add", args=[4, 5])
    now = schedule_job("0s", "tests.tasks.tasks.add", args=[1, 1])
    run_jobs()
    check(carried)
    finished = {int(c.id): c for name, c, _ in carried if name == "finished"}
    assert finished[job.pk].task.run_after == past
    assert finished[job.pk].return_value == 9
    assert finished[now.pk].task.run_after is None


def test_successes_with_the_rows_deleted(carried: Carried) -> None:
    enqueued = [tasks.add.enqueue(1, 2), tasks.echo.enqueue("x")]
    run_jobs(delete_completed=True)
    check(carried)
    assert not ScheduledJob.objects.filter(pk__in=[int(r.id) for r in enqueued]).exists()
    assert [c.status for name, c, _ in carried if name == "finished"] == [
        TaskResultStatus.SUCCESSFUL
    ] * 2


def test_a_failure_retried_then_final(carried: Carried) -> None:
    result = tasks.refuse.enqueue("not today")
    run_jobs(ignore_errors=True)
    run_jobs(now=later(5), ignore_errors=True)
    check(carried)
    assert statuses(carried, result) == [
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.READY),
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.FAILED),
    ]
    last = carried[-1][1]
    assert [e.exception_class_path for e in last.errors] == ["tests.tasks.tasks.Refused"] * 2
    assert last.attempts == 2
    assert last.finished_at == event(job_of(result), "failed", 1).at


def test_a_retry_that_succeeds(carried: Carried) -> None:
    result = tasks.fails_once.enqueue()
    run_jobs(ignore_errors=True)
    run_jobs(now=later(5))
    check(carried)
    assert statuses(carried, result) == [
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.READY),
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.SUCCESSFUL),
    ]
    last = carried[-1][1]
    assert last.return_value == {"attempt": 2}
    assert len(last.errors) == 1
    assert last.worker_ids == [e.runner for e in job_of(result).events.filter(kind="started")]


def _reads(queries: list[dict[str, Any]]) -> list[str]:
    """The queries that read a job's events or row through the ORM, or an event's time."""
    marks = (
        'FROM "django_future_jobevent"',
        'FROM "django_future_scheduledjob"',
        "SELECT at FROM django_future_jobevent",
    )
    return [q["sql"] for q in queries if any(mark in q["sql"] for mark in marks)]


def test_with_one_ledger_backend_the_ledger_is_read_once_per_run() -> None:
    sent: list[Any] = []

    def receive(sender: Any, task_result: Any, **kwargs: Any) -> None:
        sent.append(task_result.status)

    task_finished.connect(receive, dispatch_uid="test-count")
    try:
        with override_settings(TASKS=ONE):
            for _ in range(3):
                tasks.noop.enqueue()
            with CaptureQueriesContext(connection) as queries:
                run_jobs()
    finally:
        task_finished.disconnect(dispatch_uid="test-count")
    assert sent == [TaskResultStatus.SUCCESSFUL] * 3
    # task_started from the claimed row; task_finished from the time of the runner's
    # next step, and for the last task (no step follows) the time of its completion.
    reads = _reads(queries.captured_queries)
    assert len(reads) == 1, reads
    assert "SELECT at FROM django_future_jobevent" in reads[0]


def test_the_alias_the_runner_knows_follows_a_change_of_tasks() -> None:
    # running.py finds the one LedgerBackend of TASKS once, and forgets it when TASKS
    # changes: with two, the runner must read each task's scheduled event again.
    def reads_of_a_run(setting: dict[str, Any]) -> list[str]:
        with override_settings(TASKS=setting):
            tasks.noop.enqueue()
            with CaptureQueriesContext(connection) as queries:
                run_jobs()
        return _reads(queries.captured_queries)

    assert len(reads_of_a_run(ONE)) == 1  # the completion's time only
    with_two = reads_of_a_run(TWO)
    assert any('FROM "django_future_jobevent"' in sql for sql in with_two), with_two
    assert len(reads_of_a_run(ONE)) == 1


@pytest.mark.parametrize("runner", [{"runner": "host:1"}, {}])
def test_an_event_made_in_memory_is_what_jobevent_makes(runner: dict[str, str]) -> None:
    # results.py makes the events of a reading without Model.__init__ (for speed).
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    fields = {"job_id": 7, "seq": 2, "kind": EventKind.STARTED, "at": at, "data": {"a": 1}}
    fast, made = _event(**fields, **runner), JobEvent(**fields, **runner)

    def state(e: JobEvent) -> tuple[dict[str, Any], bool, str | None]:
        return {k: v for k, v in vars(e).items() if k != "_state"}, e._state.adding, e._state.db

    assert state(fast) == state(made)
    assert fast._state is not _event(**fields)._state
