"""Unique keys through Django's task API: ``task.using(unique_key=...)`` on every Django
version, ``@task(unique_key=...)`` where ``@task`` passes options on; a second enqueue
returns the holder's result and sends no ``task_enqueued``; bad keys are InvalidTask."""

from __future__ import annotations

from typing import Any

import pytest

from django_future.backends import LedgerTask
from django_future.backends.compat import InvalidTask, task_enqueued
from django_future.models import JobEvent, ScheduledJob
from tests.support import counts
from tests.tasks import tasks

pytestmark = pytest.mark.django_db


def test_a_second_enqueue_with_the_key_returns_the_first_result_and_sends_no_signal() -> None:
    sent: list[Any] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        sent.append(task_result.id)

    task_enqueued.connect(receiver)
    try:
        keyed = tasks.echo.using(unique_key="sync-user-42")
        assert isinstance(keyed, LedgerTask) and keyed.unique_key == "sync-user-42"
        first = keyed.enqueue(1)
        before = counts()
        second = keyed.enqueue(2)
    finally:
        task_enqueued.disconnect(receiver)
    assert second.id == first.id and second.args == [1]  # the holder's, as enqueued
    assert counts() == before
    assert sent == [first.id]
    job = ScheduledJob.objects.get(pk=int(first.id))
    assert (job.unique_key, job.unique_while) == ("sync-user-42", "pending")
    scheduled = JobEvent.objects.get(job_id=job.pk, kind="scheduled").data
    assert scheduled["unique_key"] == "sync-user-42"
    # The result read back carries the key on its task, as it was enqueued.
    assert tasks.echo.get_result(first.id).task.unique_key == "sync-user-42"


def test_using_keeps_djangos_own_changes_and_clears_a_key_with_none() -> None:
    keyed = tasks.echo.using(unique_key="k", unique_while="active", priority=7)
    assert (keyed.unique_key, keyed.unique_while, keyed.priority) == ("k", "active", 7)
    moved = keyed.using(queue_name="emails")
    assert (moved.unique_key, moved.queue_name) == ("k", "emails")
    assert keyed.using(unique_key=None).unique_key is None
    first, second = tasks.echo.enqueue(), tasks.echo.enqueue()
    assert first.id != second.id  # no key, no deduplication


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"unique_key": ""}, "unique_key is empty"),
        ({"unique_key": "k" * 256}, "at most 255"),
        ({"unique_key": 42}, "must be a non-empty string"),
        ({"unique_key": "k", "unique_while": "always"}, "'pending'"),
        ({"unique_while": "active"}, "needs a unique_key"),
    ],
)
def test_a_bad_key_is_invalid_task_and_nothing_is_written(
    changes: dict[str, Any], message: str
) -> None:
    before = counts()
    with pytest.raises(InvalidTask, match=message):
        tasks.echo.using(**changes).enqueue()
    assert counts() == before


@pytest.mark.skipif(not tasks.PER_TASK_OPTIONS, reason="@task passes no options on Django 6.0")
def test_a_task_declared_with_a_key_is_enqueued_once_while_active() -> None:
    first = tasks.nightly_report.enqueue()
    second = tasks.nightly_report.enqueue()
    assert first.id == second.id
    job = ScheduledJob.objects.get(pk=int(first.id))
    assert (job.unique_key, job.unique_while) == ("nightly-report", "active")
