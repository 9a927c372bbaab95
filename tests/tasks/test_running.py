"""Running tasks: the runner calls them through django_future.taskhook, and their
results, read from the ledger, say what happened. In-process (run_jobs) unless a test
says "runner"; those start runscheduledjobs in its own process."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils.module_loading import import_string

from django_future import schedule_job
from django_future.backends import JobAbandoned, JobCancelled, JobExpired, LedgerBackend
from django_future.backends.compat import (
    TaskResultStatus,
    task_enqueued,
    task_finished,
    task_started,
)
from django_future.models import ScheduledJob
from django_future.runner import JobFailedError, run_jobs
from tests.support import event, fresh, kinds, later
from tests.tasks import tasks
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db


def job_of(result: Any) -> ScheduledJob:
    return ScheduledJob.objects.get(pk=int(result.id))


def test_a_task_runs_and_its_result_reads_the_ledger() -> None:
    result = tasks.add.enqueue(2, 3)
    report = run_jobs()
    assert report.completed == [int(result.id)]
    result.refresh()
    job = job_of(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.is_finished
    assert result.errors == []
    assert result.started_at == result.last_attempted_at == event(job, "started").at
    assert result.finished_at == event(job, "completed").at
    assert result.worker_ids == [event(job, "started").runner]
    assert result.attempts == job.attempts == 1


def test_the_return_value_is_the_completed_events_json() -> None:
    result = tasks.echo.enqueue(1, "a", k=[None])
    run_jobs()
    result.refresh()
    assert result.return_value == {"args": [1, "a"], "kwargs": {"k": [None]}}
    assert event(job_of(result), "completed").data["result"] == result.return_value


def test_a_tuple_return_value_is_stored_as_a_list() -> None:
    result = tasks.returns_tuple.enqueue()
    run_jobs()
    assert tasks.returns_tuple.get_result(result.id).return_value == [1, "two", None]


def test_a_task_returning_none() -> None:
    result = tasks.noop.enqueue()
    run_jobs()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value is None


def test_an_async_task_runs() -> None:
    result = tasks.async_add.enqueue(20, 22)
    run_jobs()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert fresh(job_of(result)).return_value == "42"


def test_a_coroutine_function_scheduled_as_a_plain_job_runs() -> None:
    job = schedule_job("0s", "tests.tasks.tasks.plain_async", args=[21])
    run_jobs()
    assert fresh(job).status == ScheduledJob.STATUS_COMPLETE
    assert fresh(job).return_value == "42"


def test_a_plain_function_stays_a_plain_job() -> None:
    job = schedule_job("0s", "tests.tasks.tasks.plain", args=[7])
    sent: list[Any] = []
    task_started.connect(sent.append, weak=False, dispatch_uid="plain-started")
    try:
        run_jobs()
    finally:
        task_started.disconnect(dispatch_uid="plain-started")
    assert fresh(job).return_value == "7"
    assert sent == []


def test_a_failure_is_a_task_error_with_its_class_and_traceback() -> None:
    result = tasks.refuse.enqueue("not today")
    with pytest.raises(JobFailedError):
        run_jobs()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.exception_class_path == "tests.tasks.tasks.Refused"
    assert error.exception_class is tasks.Refused
    assert "not today" in error.traceback
    assert "Traceback" in error.traceback
    assert error.traceback == event(job_of(result), "failed").data["error"]
    assert result.finished_at == event(job_of(result), "failed").at
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018 - the property raises


def test_a_builtin_exception_is_named_in_builtins() -> None:
    result = tasks.add.enqueue(1, "x")  # int + str: TypeError
    run_jobs(ignore_errors=True)
    result.refresh()
    assert [e.exception_class_path for e in result.errors] == ["builtins.TypeError"]
    assert result.errors[0].exception_class is TypeError


@pytest.mark.parametrize("name", ["returns_set", "returns_nan"])
def test_a_return_value_json_cannot_hold_fails_the_attempt(name: str) -> None:
    the_task = getattr(tasks, name)
    result = the_task.enqueue()
    run_jobs(ignore_errors=True)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    failed = event(job_of(result), "failed")
    assert "JSON cannot hold" in failed.data["error"]
    assert f"tests.tasks.tasks.{name}" in failed.data["error"]
    assert result.errors[0].exception_class_path == (
        "django_future.backends.backend.TaskReturnValueError"
    )
    assert kinds(job_of(result)) == ["scheduled", "started", "failed"]


def test_retries_from_the_backends_options_give_one_error_per_attempt() -> None:
    result = tasks.fails_first.enqueue(succeed_on=3)  # the "retrying" backend: 2 retries
    job = job_of(result)
    assert (job.max_attempts, job.retry_delay) == (3, dt.timedelta(seconds=1))
    run_jobs(ignore_errors=True)
    result.refresh()
    assert result.status == TaskResultStatus.READY  # a retry is pending
    assert len(result.errors) == 1
    assert result.finished_at is None
    run_jobs(now=later(5))
    run_jobs(now=later(5))
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert [e.exception_class_path for e in result.errors] == ["tests.tasks.tasks.Refused"] * 2
    assert ["attempt 1" in result.errors[0].traceback, "attempt 2" in result.errors[1].traceback]
    assert len(result.worker_ids) == 3 == fresh(job).attempts
    assert result.started_at == event(job, "started", 0).at
    assert result.last_attempted_at == event(job, "started", 2).at


def test_the_context_matches_the_ledger() -> None:
    tasks.seen.clear()
    result = tasks.with_context.enqueue(5)
    run_jobs()
    (context,) = tasks.seen
    job = fresh(job_of(result))
    assert context.attempt == job.attempts == 1
    assert context.task_result.id == result.id
    assert context.task_result.status == TaskResultStatus.RUNNING
    assert context.task_result.worker_ids == [event(job, "started").runner]
    assert context.task_result.started_at == event(job, "started").at
    assert context.task_result.task == tasks.with_context


def test_an_async_task_with_context() -> None:
    result = tasks.async_with_context.enqueue()
    run_jobs()
    assert fresh(job_of(result)).return_value == "1"


def test_the_context_counts_retries() -> None:
    result = tasks.fails_first.enqueue(succeed_on=2)
    run_jobs(ignore_errors=True)
    run_jobs(now=later(5))
    job = fresh(job_of(result))
    assert job.status == ScheduledJob.STATUS_COMPLETE
    assert job.return_value == "2"  # context.attempt on the second attempt


def test_expired_and_abandoned_read_as_our_exceptions() -> None:
    result = tasks.noop.using(backend="retrying").enqueue()  # expires: 1h
    run_jobs(now=later(7200))  # nothing due before it expired: the runner expires it
    result.refresh()
    assert kinds(job_of(result)) == ["scheduled", "expired"]
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class for e in result.errors] == [JobExpired]
    for cls in (JobAbandoned, JobCancelled, JobExpired):  # importable, by the path named
        assert issubclass(cls, BaseException)
        assert import_string(f"django_future.backends.{cls.__name__}") is cls


def test_an_attempt_whose_runner_died_reads_as_job_abandoned() -> None:
    from tests.runner.test_leases import DEAD, _in_the_hands_of

    result = tasks.noop.using(backend="retrying").enqueue()  # 2 retries
    _in_the_hands_of(job_of(result), lease=DEAD, name="ghost:9")
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING
    assert result.worker_ids == ["ghost:9"]
    run_jobs(now=later(5))  # recovers it (abandoned, retry), then runs it again
    result.refresh()
    assert kinds(job_of(result))[:4] == ["scheduled", "started", "abandoned", "retry"]
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert [e.exception_class for e in result.errors] == [JobAbandoned]
    assert "ghost:9" in result.errors[0].traceback
    assert result.worker_ids[0] == "ghost:9" and len(result.worker_ids) == 2


# --- signals -----------------------------------------------------------------------------


@pytest.fixture
def signals() -> Iterator[list[tuple[str, Any, Any]]]:
    got: list[tuple[str, Any, Any]] = []
    receivers = {}
    for name, signal in (
        ("enqueued", task_enqueued),
        ("started", task_started),
        ("finished", task_finished),
    ):

        def receive(sender: Any, task_result: Any, _name: str = name, **kwargs: Any) -> None:
            got.append((_name, sender, task_result))

        receivers[name] = receive
        signal.connect(receive, dispatch_uid=f"test-{name}")
    yield got
    for name, signal in (
        ("enqueued", task_enqueued),
        ("started", task_started),
        ("finished", task_finished),
    ):
        signal.disconnect(dispatch_uid=f"test-{name}")


def test_signals_in_order_with_results_from_the_ledger(signals: list[Any]) -> None:
    result = tasks.add.enqueue(1, 2)
    assert [(n, s) for n, s, _ in signals] == [("enqueued", LedgerBackend)]
    assert signals[0][2] == result
    run_jobs()
    assert [(n, s) for n, s, _ in signals] == [
        ("enqueued", LedgerBackend),
        ("started", LedgerBackend),
        ("finished", LedgerBackend),
    ]
    started, finished = signals[1][2], signals[2][2]
    assert started.id == finished.id == result.id
    assert started.status == TaskResultStatus.RUNNING
    assert finished.status == TaskResultStatus.SUCCESSFUL
    assert finished == tasks.add.get_result(result.id)


def test_task_finished_after_a_failure_sees_it_recorded(signals: list[Any]) -> None:
    result = tasks.refuse.enqueue()
    with pytest.raises(JobFailedError):
        run_jobs()
    finished = [r for n, _, r in signals if n == "finished"]
    assert len(finished) == 1
    assert finished[0].id == result.id
    assert finished[0].status == TaskResultStatus.FAILED
    assert len(finished[0].errors) == 1


def test_task_finished_for_each_attempt_of_a_retried_task(signals: list[Any]) -> None:
    tasks.fails_first.enqueue(succeed_on=2)
    run_jobs(ignore_errors=True)
    run_jobs(now=later(5))
    finished = [r.status for n, _, r in signals if n == "finished"]
    assert finished == [TaskResultStatus.READY, TaskResultStatus.SUCCESSFUL]


def test_a_raising_finished_receiver_does_not_stop_the_runner(signals: list[Any]) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    task_finished.connect(broken, dispatch_uid="broken")
    try:
        first = tasks.noop.enqueue()
        second = tasks.noop.enqueue()
        run_jobs()
    finally:
        task_finished.disconnect(dispatch_uid="broken")
    assert tasks.noop.get_result(first.id).status == TaskResultStatus.SUCCESSFUL
    assert tasks.noop.get_result(second.id).status == TaskResultStatus.SUCCESSFUL


def test_no_enqueued_signal_for_a_refused_enqueue(signals: list[Any]) -> None:
    with pytest.raises(TypeError):
        tasks.echo.enqueue(object())
    assert signals == []


# --- atomic -----------------------------------------------------------------------------

if tasks.PER_TASK_OPTIONS:

    def test_per_task_options_reach_the_job() -> None:
        result = tasks.atomic_write_then_fail.enqueue("A-1")
        job = job_of(result)
        assert job.atomic
        assert (job.max_attempts, job.retry_delay) == (2, dt.timedelta(seconds=1))
        assert job.time_slot_end - job.time_slot_start == dt.timedelta(hours=2)
        run_jobs(ignore_errors=True)
        assert not Order.objects.filter(number="A-1").exists()  # rolled back
        result.refresh()
        assert result.status == TaskResultStatus.READY
        assert [e.exception_class_path for e in result.errors] == ["builtins.RuntimeError"]

    def test_expires_none_per_task_never_expires() -> None:
        job = job_of(tasks.never_expires.enqueue())
        assert job.time_slot_end is None


def test_a_task_scheduled_with_schedule_job_runs_as_a_task() -> None:
    job = schedule_job("0s", tasks.add.module_path, args=[4, 5])
    run_jobs()
    result = tasks.add.get_result(str(job.pk))
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert fresh(job).return_value == "9"


def test_larger_priorities_run_first() -> None:
    low = tasks.noop.using(priority=-5).enqueue()
    high = tasks.noop.using(priority=50).enqueue()
    middle = tasks.noop.enqueue()
    run_jobs()
    order = sorted((low, high, middle), key=lambda r: event(job_of(r), "started").pk)
    assert [r.id for r in order] == [high.id, middle.id, low.id]
