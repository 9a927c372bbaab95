"""Enqueueing through LedgerBackend: a task becomes a job, and its result is read from
the ledger. What Django's own tests ask of a task backend, asked of ours, plus what a
ledger adds (the event, the alias, the transaction)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pickle

import django
import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from django_future import schedule_job
from django_future.backends import LedgerBackend
from django_future.backends.compat import (
    FRAMEWORK,
    InvalidTask,
    InvalidTaskBackend,
    Task,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    default_task_backend,
    task,
    task_backends,
)
from django_future.models import ScheduledJob
from tests.support import counts, db_now, event
from tests.tasks import tasks

pytestmark = pytest.mark.django_db


def test_the_configured_backend_is_ours() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, LedgerBackend)
    assert default_task_backend.alias == "default"
    assert backend.supports_defer
    assert backend.supports_priority
    assert backend.supports_get_result
    assert backend.supports_async_task
    assert isinstance(tasks.add, Task)


def test_enqueue_writes_one_job_with_the_tasks_path_and_arguments() -> None:
    before = db_now()
    result = tasks.add.enqueue(2, b=3)
    job = ScheduledJob.objects.get(pk=int(result.id))
    assert job.callable_name == "tests.tasks.tasks.add" == tasks.add.module_path
    assert job.args == [2]
    assert job.kwargs == {"b": 3}
    assert job.status == ScheduledJob.STATUS_SCHEDULED
    assert before <= job.time_slot_start <= db_now()
    scheduled = event(job, "scheduled")
    assert scheduled.data["task_backend"] == "default"
    assert result.enqueued_at == scheduled.at
    assert result.status == TaskResultStatus.READY
    assert result.task == tasks.add
    assert result.args == [2]
    assert result.kwargs == {"b": 3}
    assert result.backend == "default"
    assert result.errors == []
    assert result.worker_ids == []
    assert result.started_at is None
    assert result.finished_at is None
    assert result.last_attempted_at is None
    assert not result.is_finished
    with pytest.raises(ValueError, match="not finished"):
        result.return_value  # noqa: B018 - the property raises


def test_the_result_id_is_the_job_id() -> None:
    result = tasks.noop.enqueue()
    assert result.id == str(ScheduledJob.objects.get().pk)


def test_run_after_is_the_jobs_due_time_and_none_is_now() -> None:
    at = timezone.now() + dt.timedelta(hours=2)
    result = tasks.noop.using(run_after=at).enqueue()
    job = ScheduledJob.objects.get(pk=int(result.id))
    assert job.time_slot_start == at
    assert job.time_slot_end == at + dt.timedelta(days=7)  # default expires: 7d
    assert result.task.run_after == at
    assert tasks.noop.get_result(result.id).task.run_after == at


def test_queue_priority_and_alias_are_recorded() -> None:
    result = tasks.send_email.enqueue("a@example.com")
    data = event(fresh_job(result), "scheduled").data
    assert data["task_backend"] == "default"
    got = tasks.send_email.get_result(result.id)
    assert (got.task.queue_name, got.task.priority) == ("emails", 5)
    other = tasks.add.using(priority=-100).enqueue(1, 2)
    assert tasks.add.get_result(other.id).task.priority == -100


def test_queue_and_priority_are_the_jobs_fields() -> None:
    job = fresh_job(tasks.send_email.enqueue("a@example.com"))
    assert (job.queue, job.priority) == ("emails", 5)  # type: ignore[attr-defined]


def fresh_job(result: object) -> ScheduledJob:
    return ScheduledJob.objects.get(pk=int(result.id))  # type: ignore[attr-defined]


def test_get_result_reads_the_same_result_back() -> None:
    result = default_task_backend.enqueue(tasks.noop, (), {})
    again = tasks.noop.get_result(result.id)
    assert again == result
    assert default_task_backend.get_result(result.id) == result


def test_aenqueue_and_aget_result() -> None:
    async def scenario() -> None:
        from asgiref.sync import sync_to_async

        result = await tasks.add.aenqueue(1, 2)
        assert result.status == TaskResultStatus.READY
        assert result.args == [1, 2]
        again = await tasks.add.aget_result(result.id)
        assert again == result
        assert await sync_to_async(ScheduledJob.objects.filter(pk=int(result.id)).exists)()

    async_to_sync(scenario)()


@pytest.mark.parametrize(
    "result_id", ["123456789", "0", "-1", "abc", "", "1.5", "9" * 30, "\uff11"]
)
def test_unknown_or_malformed_ids_do_not_exist(result_id: str) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        tasks.noop.get_result(result_id)
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)


@pytest.mark.parametrize("result_id", [2**70, -5, 0, None, True, 1.0])
def test_ids_that_are_no_strings_do_not_exist_either(result_id: object) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)


def test_an_int_id_reads_the_same_result() -> None:
    result = tasks.noop.enqueue()
    assert default_task_backend.get_result(int(result.id)) == result


def test_aget_result_of_an_unknown_id() -> None:
    async def scenario() -> None:
        with pytest.raises(TaskResultDoesNotExist):
            await tasks.noop.aget_result("123456789")

    async_to_sync(scenario)()


def test_a_plain_jobs_id_is_no_task_result() -> None:
    job = schedule_job("1h", "tests.tasks.tasks.plain", args=[1])
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(job.pk))


def test_a_result_of_another_task_is_a_mismatch() -> None:
    result = tasks.async_add.enqueue(1, 2)
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        tasks.add.get_result(result.id)


def test_a_result_of_another_task_is_a_mismatch_async() -> None:
    async def scenario() -> None:
        result = await tasks.async_add.aenqueue(1, 2)
        with pytest.raises(TaskResultMismatch, match="Task does not match"):
            await tasks.add.aget_result(result.id)

    async_to_sync(scenario)()


def test_refresh_keeps_an_unchanged_result() -> None:
    result = tasks.noop.enqueue()
    before = dataclasses.asdict(result)
    result.refresh()
    assert dataclasses.asdict(result) == before


def test_arefresh_keeps_an_unchanged_result() -> None:
    async def scenario() -> None:
        result = await tasks.noop.aenqueue()
        before = dataclasses.asdict(result)
        await result.arefresh()
        assert dataclasses.asdict(result) == before

    async_to_sync(scenario)()


def test_refresh_sees_a_cancel() -> None:
    result = tasks.noop.enqueue()
    fresh_job(result).cancel(by="tests", reason="not needed")
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in result.errors] == [
        "django_future.backends.JobCancelled"
    ]
    assert "not needed" in result.errors[0].traceback
    assert result.finished_at == event(fresh_job(result), "cancelled").at
    with pytest.raises(ValueError, match="failed"):
        result.return_value  # noqa: B018 - the property raises


def test_using_makes_new_tasks_and_leaves_the_original() -> None:
    now = timezone.now()
    assert tasks.noop.using() == tasks.noop
    assert tasks.noop.using() is not tasks.noop
    moved = tasks.noop.using(priority=10, queue_name="emails", run_after=now)
    assert (moved.priority, moved.queue_name, moved.run_after) == (10, "emails", now)
    assert (tasks.noop.priority, tasks.noop.queue_name, tasks.noop.run_after) == (
        0,
        "default",
        None,
    )
    assert moved.using(priority=1).run_after == now
    assert type(moved) is type(tasks.noop)


def test_using_another_alias_records_it() -> None:
    result = tasks.noop.using(backend="retrying").enqueue()
    assert result.backend == "retrying"
    assert event(fresh_job(result), "scheduled").data["task_backend"] == "retrying"
    assert tasks.noop.get_result(result.id).backend == "retrying"


def test_using_an_unknown_backend() -> None:
    with pytest.raises(InvalidTaskBackend):
        tasks.noop.using(backend="unknown")


def test_name_and_module_path() -> None:
    from django.utils.module_loading import import_string

    assert tasks.noop.name == "noop"
    assert tasks.async_add.module_path == "tests.tasks.tasks.async_add"
    assert import_string(tasks.async_add.module_path) is tasks.async_add


@pytest.mark.skipif(
    FRAMEWORK != "django.tasks" or django.VERSION < (6, 1), reason="Task pickles from 6.1"
)
def test_tasks_and_results_pickle() -> None:
    assert pickle.loads(pickle.dumps(tasks.add)) == tasks.add  # noqa: S301 - our own bytes
    assert pickle.loads(pickle.dumps(tasks.send_email.using(priority=9))).priority == 9  # noqa: S301 - our own bytes
    result = tasks.add.enqueue(1, 2)
    assert pickle.loads(pickle.dumps(result)) == result  # noqa: S301 - our own bytes


def test_calling_a_task_in_process_still_works() -> None:
    assert tasks.add.call(1, 2) == 3
    assert tasks.async_add.call(1, 2) == 3


# --- transactions ---------------------------------------------------------------------


def test_enqueue_in_a_rolled_back_transaction_leaves_nothing() -> None:
    before = counts()
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.add.enqueue(1, 2)
        assert counts() == (before[0] + 1, before[1] + 1)  # the job is in the transaction
        raise RuntimeError("roll back")
    assert counts() == before


def test_enqueue_in_a_committed_transaction_keeps_the_job() -> None:
    with transaction.atomic():
        result = tasks.add.enqueue(1, 2)
    assert tasks.add.get_result(result.id).status == TaskResultStatus.READY


# --- bad input: Django's errors, and nothing written --------------------------------------


def _no_writes(before: tuple[int, int]) -> None:
    assert counts() == before, "a refused enqueue wrote something"


def test_a_function_not_at_module_level_is_refused() -> None:
    def local() -> None:
        pass

    before = counts()
    with pytest.raises(InvalidTask, match="module level"):
        task()(local)
    with pytest.raises(InvalidTask, match="module level"):
        task()(any)
    _no_writes(before)


def test_an_unknown_queue_is_refused() -> None:
    before = counts()
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid"):
        tasks.noop.using(queue_name="nope")
    # enqueue checks again: a task made for another backend's queues
    with pytest.raises(InvalidTask, match="not valid"):
        default_task_backend.enqueue(tasks.noop.using(backend="retrying", queue_name="x"), (), {})
    _no_writes(before)


@pytest.mark.parametrize("priority", [101, -101, 3.5])
def test_a_priority_out_of_range_is_refused(priority: float) -> None:
    before = counts()
    with pytest.raises(InvalidTask, match="priority must be a whole number"):
        tasks.noop.using(priority=priority)  # type: ignore[arg-type]
    _no_writes(before)


def test_priorities_at_the_bounds_are_accepted() -> None:
    for priority in (-100, 0, 100):
        tasks.noop.using(priority=priority).enqueue()
    assert ScheduledJob.objects.count() == 3


def test_a_naive_run_after_is_refused_with_use_tz() -> None:
    before = counts()
    with pytest.raises(InvalidTask, match="aware datetime"):
        tasks.noop.using(run_after=dt.datetime(2030, 1, 1))
    _no_writes(before)


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((dt.datetime(2030, 1, 1),), {}, TypeError),
        ((), {"when": object()}, TypeError),
        ((b"\xff",), {}, ValueError),  # bytes that are not UTF-8
        ((float("nan"),), {}, TypeError),  # JSON has no NaN
        (("nul\x00",), {}, TypeError),  # PostgreSQL stores no NUL
    ],
)
def test_arguments_json_cannot_carry_are_refused(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception]
) -> None:
    before = counts()
    with pytest.raises(error):
        tasks.echo.enqueue(*args, **kwargs)
    _no_writes(before)


def test_arguments_are_normalised_as_django_does() -> None:
    result = tasks.echo.enqueue((1, 2), b"bytes", key={"a": (3,)})
    assert result.args == [[1, 2], "bytes"]
    assert result.kwargs == {"key": {"a": [3]}}
    assert fresh_job(result).args == [[1, 2], "bytes"]


def test_takes_context_needs_a_context_parameter() -> None:
    with pytest.raises(InvalidTask, match="first argument of 'context'"):
        task(takes_context=True)(tasks.add.func)
