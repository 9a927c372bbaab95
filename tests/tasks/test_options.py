"""The backend's OPTIONS (a system check, and ImproperlyConfigured at enqueue) and the
per-task options of LedgerTask (InvalidTask when the task is made)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_future.backends import DEFAULT, LedgerBackend, LedgerTask
from django_future.backends.compat import InvalidTask, task, task_backends
from django_future.models import ScheduledJob
from tests.support import counts
from tests.tasks import tasks

per_task = pytest.mark.skipif(
    not tasks.PER_TASK_OPTIONS, reason="@task passes no options to task_class on Django 6.0"
)


def backend_with(options: Any) -> LedgerBackend:
    return LedgerBackend("custom", {"QUEUES": [], "OPTIONS": options})


@pytest.mark.unit
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries must be a whole number"),
        ({"retries": True}, "retries must be a whole number"),
        ({"retries": "3"}, "retries must be a whole number"),
        ({"retry_delay": "soon"}, "retry_delay: 'soon' is not a duration"),
        ({"retry_max_delay": 5}, "retry_max_delay: 5 is not a duration"),
        ({"retry_delay": "1h", "retry_max_delay": "1m"}, "shorter than retry_delay"),
        ({"expires": "a week"}, "expires: 'a week' is not a duration"),
        ({"expires": dt.timedelta(seconds=-1)}, "is negative"),
        ({"atomic": "yes"}, "atomic must be True or False"),
        ({"lock": ""}, "lock is empty"),
        ({"lock": "l" * 101}, "at most 100"),
        ({"retry": 3}, "unknown option 'retry'"),
        (["retries"], "must be a dict"),
    ],
)
def test_bad_options_are_named_by_the_check(options: Any, message: str) -> None:
    errors = list(backend_with(options).check())
    assert [e.id for e in errors] == ["django_future.E010"]
    assert message in errors[0].msg
    assert "TASKS['custom']['OPTIONS']" in errors[0].msg


@pytest.mark.unit
def test_good_options_pass_the_check() -> None:
    options = {
        "retries": 3,
        "retry_delay": "30s",
        "retry_max_delay": dt.timedelta(hours=1),
        "expires": None,
        "atomic": True,
    }
    assert list(backend_with(options).check()) == []
    assert list(backend_with({}).check()) == []


@pytest.mark.django_db
def test_bad_options_refuse_every_enqueue_and_write_nothing() -> None:
    before = counts()
    with pytest.raises(ImproperlyConfigured, match="retries must be a whole number"):
        backend_with({"retries": -1}).enqueue(tasks.noop, (), {})
    assert counts() == before


@pytest.mark.django_db
def test_the_projects_checks_include_the_backends() -> None:
    bad = {
        "default": {"BACKEND": "django_future.backends.LedgerBackend", "OPTIONS": {"x": 1}},
    }
    with override_settings(TASKS=bad):
        ids = [m.id for m in run_checks()]
    assert "django_future.E010" in ids
    assert "django_future.E010" not in [m.id for m in run_checks()]


@pytest.mark.unit
def test_a_missing_app_is_reported() -> None:
    with override_settings(INSTALLED_APPS=["django.contrib.contenttypes"]):
        errors = list(backend_with({}).check())
    assert [e.id for e in errors] == ["django_future.E011"]


@pytest.mark.django_db
def test_the_backends_options_reach_the_job() -> None:
    result = tasks.noop.using(backend="retrying").enqueue()
    job = ScheduledJob.objects.get(pk=int(result.id))
    assert job.max_attempts == 3
    assert job.retry_delay == dt.timedelta(seconds=1)
    assert job.time_slot_end - job.time_slot_start == dt.timedelta(hours=1)
    assert not job.atomic


@pytest.mark.django_db
def test_the_default_options_are_schedule_jobs() -> None:
    job = ScheduledJob.objects.get(pk=int(tasks.noop.enqueue().id))
    assert (job.max_attempts, job.retry_delay, job.atomic) == (1, None, False)
    assert job.time_slot_end - job.time_slot_start == dt.timedelta(days=7)


@pytest.mark.unit
def test_the_task_class_is_ours_with_every_option_at_default() -> None:
    assert task_backends["default"].task_class is LedgerTask
    assert isinstance(tasks.noop, LedgerTask)
    assert tasks.noop.own_options() == {}
    assert tasks.noop.retries is DEFAULT


@per_task
@pytest.mark.unit
def test_per_task_options_are_kept_by_using() -> None:
    moved = tasks.atomic_write_then_fail.using(priority=3)
    assert moved.own_options() == {
        "retries": 1,
        "retry_delay": "1s",
        "expires": "2h",
        "atomic": True,
    }


@per_task
@pytest.mark.unit
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -2}, "retries must be a whole number"),
        ({"expires": "later"}, "'later' is not a duration"),
        ({"atomic": 1}, "atomic must be True or False"),
        ({"lock": ""}, "lock is empty"),
        ({"lock": 42}, "lock must be a non-empty string"),
        ({"retries": 1, "retry_max_delay": "1s"}, "shorter than retry_delay"),
    ],
)
def test_bad_per_task_options_are_invalid_tasks(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        task(**options)(tasks.noop.func)


@per_task
@pytest.mark.unit
def test_per_task_options_need_our_backend() -> None:
    with override_settings(TASKS={"default": {"BACKEND": "django_future.backends.LedgerBackend"}}):
        made = task(retries=2)(tasks.noop.func)
    assert made.retries == 2


@per_task
@pytest.mark.django_db
def test_a_tasks_lock_reaches_its_jobs() -> None:
    """``@task(lock=...)``: every run of the task takes the lock (Django's enqueue has no
    per-call options, so the lock is the task's)."""
    locked = task(lock="reports")(tasks.noop.func)
    assert locked.own_options() == {"lock": "reports"}
    job = ScheduledJob.objects.get(pk=int(locked.enqueue().id))
    assert job.lock == "reports"
    assert ScheduledJob.objects.get(pk=int(tasks.noop.enqueue().id)).lock is None
