"""DJANGO_FUTURE_ALLOWED_CALLABLES at every door that takes a callable: schedule_job,
schedule_jobs, the django.tasks backend, periodic schedules; the runner in this process
(tests/runner/test_allowlist_processes.py has it in a real runner process); the
system checks E020 and W020."""

from __future__ import annotations

import re
import sys

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from django_future import allowlist, run_jobs, schedule_job, schedule_jobs
from django_future.allowlist import CallableRefusedError
from django_future.checks import check_allowed_callables, check_periodic
from django_future.models import ScheduledJob
from tests.support import counts, fresh, kinds
from tests.tasks import tasks
from tests.testapp.models import Order

SETTING = "DJANGO_FUTURE_ALLOWED_CALLABLES"
allow = override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES=["tests.handlers"])


# --- the prefixes ---------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("shop.jobs", True),  # the prefix itself
        ("shop.jobs.sweep", True),
        ("shop.jobs.nightly.sweep", True),
        ("shop.jobsevil.sweep", False),  # not on a dotted boundary
        ("shop.job", False),
        ("shop", False),
        ("os.system", False),
        ("shop.jobs..sweep", False),  # not a well-formed dotted path
        ("shop.jobs.sweep ", False),
        ("shop.jobs.<lambda>", False),
        ("", False),
    ],
)
def test_prefixes_match_on_dotted_boundaries(path: str, expected: bool) -> None:
    assert allowlist.allowed(path, ("shop.jobs", "billing")) is expected


@pytest.mark.unit
def test_unset_allows_everything_and_empty_allows_nothing() -> None:
    with override_settings():
        assert allowlist.prefixes() is None
        assert allowlist.allowed("os.system")
    with override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES=[]):
        assert allowlist.prefixes() == ()
        assert not allowlist.allowed("tests.handlers.record")


# --- schedule_job and schedule_jobs ---------------------------------------------


@pytest.mark.django_db
@allow
def test_schedule_job_refuses_a_path_outside_the_list_and_writes_nothing() -> None:
    before = counts()
    for path in ("os.system", "tests.handlersevil.x", "tests.intruder.run"):
        with pytest.raises(ValueError, match=re.escape(f"{path!r} is not allowed by {SETTING}")):
            schedule_job("0s", path)
    assert counts() == before
    assert "tests.intruder" not in sys.modules  # refused before any import
    assert schedule_job("0s", "tests.handlers.record").status == "scheduled"


@pytest.mark.django_db
@override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES=["tests.allowed_jobs"])
def test_a_name_an_allowed_module_only_imported_is_refused() -> None:
    before = counts()
    # tests/allowed_jobs.py does `from django_future import schedule_job`.
    with pytest.raises(
        CallableRefusedError, match=re.escape("django_future.scheduler.schedule_job")
    ):
        schedule_job("0s", "tests.allowed_jobs.schedule_job")
    assert counts() == before
    assert schedule_job("0s", "tests.allowed_jobs.ok").status == "scheduled"


@pytest.mark.django_db
@allow
def test_schedule_jobs_refuses_the_whole_call() -> None:
    before = counts()
    jobs = [
        {"date": "0s", "callable_name": "tests.handlers.record"},
        {"date": "0s", "callable_name": "subprocess.run", "args": [["id"]]},
    ]
    with pytest.raises(
        ValueError, match=re.escape(f"'subprocess.run' is not allowed by {SETTING}")
    ):
        schedule_jobs(jobs)
    assert counts() == before


@pytest.mark.django_db
def test_the_cache_of_checked_callables_does_not_outlive_the_list() -> None:
    schedule_job("1d", "tests.allowed_jobs.ok")  # checked, and remembered, with no list
    with allow, pytest.raises(CallableRefusedError):
        schedule_job("1d", "tests.allowed_jobs.ok")


@pytest.mark.django_db
@allow
def test_a_content_object_method_is_checked_as_module_model_method() -> None:
    order = Order.objects.create(number="A-1")
    with pytest.raises(
        CallableRefusedError, match=re.escape("'tests.testapp.models.Order.remind'")
    ):
        schedule_job("0s", "remind", content_object=order)
    with override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES=["tests.testapp.models.Order"]):
        assert schedule_job("0s", "remind", content_object=order).status == "scheduled"


@pytest.mark.django_db
@override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES="tests.handlers")
def test_a_broken_list_refuses_every_job() -> None:
    before = counts()
    with pytest.raises(CallableRefusedError, match="must be a list of dotted prefixes"):
        schedule_job("0s", "tests.handlers.record")
    assert counts() == before


# --- the django.tasks backend ---------------------------------------------------


@pytest.mark.django_db
def test_enqueue_refuses_a_task_outside_the_list() -> None:
    before = counts()
    with (
        allow,
        pytest.raises(
            ValueError, match=re.escape(f"'tests.tasks.tasks.add' is not allowed by {SETTING}")
        ),
    ):
        tasks.add.enqueue(1, 2)
    assert counts() == before
    with override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES=["tests.tasks"]):
        result = tasks.add.enqueue(1, 2)
    assert ScheduledJob.objects.get(pk=result.id).callable_name == "tests.tasks.tasks.add"


# --- the runner, in this process ------------------------------------------------


@pytest.mark.django_db
def test_the_runner_refuses_a_job_the_list_no_longer_allows_and_does_not_retry() -> None:
    job = schedule_job("0s", "tests.allowed_jobs.ok", retries=3)  # before the list
    with allow:
        report = run_jobs(ignore_errors=True)
    assert report.failed == [job.pk] and report.retried == []
    assert kinds(job) == ["scheduled", "started", "failed"]
    assert SETTING in fresh(job).error
    call_command("scheduledjobs", "verify")


@pytest.mark.django_db
def test_the_runner_refuses_a_name_imported_into_an_allowed_module() -> None:
    job = schedule_job("0s", "tests.handlers.schedule_job", args=["1d", "tests.handlers.record"])
    with allow:
        run_jobs(ignore_errors=True)
    assert kinds(job) == ["scheduled", "started", "failed"]
    assert "defined elsewhere" in fresh(job).error
    assert ScheduledJob.objects.count() == 1  # the imported schedule_job never ran


@pytest.mark.django_db
def test_the_runner_checks_a_content_object_method_by_its_model() -> None:
    order = Order.objects.create(number="A-2")
    job = schedule_job("0s", "remind", content_object=order)
    with allow:
        run_jobs(ignore_errors=True)
    assert kinds(job) == ["scheduled", "started", "failed"]
    assert "'tests.testapp.models.Order.remind'" in fresh(job).error
    order.refresh_from_db()
    assert order.reminded == 0


@pytest.mark.django_db
def test_a_task_runs_only_as_the_registered_task_of_its_path() -> None:
    """tests/allowed_jobs.py publishes tasks.add under another name. schedule_job refuses
    that path; a row written past it (the ledger's SQL function, as in the process test)
    imports a Task registered as tests.tasks.tasks.add, and is not run (nor retried)."""
    with pytest.raises(ValueError, match="not a callable"):
        schedule_job("0s", "tests.allowed_jobs.add_alias")
    job = schedule_job("0s", "tests.handlers.record")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM django_future_schedule_one(%s::jsonb, NULL, '0 s'::interval, "
            "NULL, '1 day'::interval)",
            [
                '{"callable_name": "tests.allowed_jobs.add_alias", "args": [1, 2], '
                '"kwargs": {}, "retries": 2, "retry_delay": 1, "retry_max_delay": 1}'
            ],
        )
        alias_job = cursor.fetchone()[0]
    run_jobs(ignore_errors=True)
    assert kinds(alias_job) == ["scheduled", "started", "failed"]  # no retry
    error = ScheduledJob.objects.get(pk=alias_job).error
    assert "registered as 'tests.tasks.tasks.add'" in error
    assert "not a callable or the registered task of that path" in error
    assert kinds(job) == ["scheduled", "started", "completed"]
    call_command("scheduledjobs", "verify")


# --- periodic schedules ---------------------------------------------------------


@pytest.mark.unit
def test_a_periodic_schedule_outside_the_list_is_a_start_up_error() -> None:
    spec = {"nightly": {"cron": "30 2 * * *", "callable": "tests.intruder.run"}}
    with allow, override_settings(DJANGO_FUTURE_PERIODIC=spec):
        (error,) = check_periodic()
    assert error.id == "django_future.E004"
    assert f"'tests.intruder.run' is not allowed by {SETTING}" in error.msg
    assert "tests.intruder" not in sys.modules


# --- system checks --------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tests.handlers", "must be a list of dotted prefixes"),
        ({"tests": True}, "must be a list of dotted prefixes"),
        (["tests.handlers", ""], "'' is not a dotted path"),
        (["tests..handlers"], "'tests..handlers' is not a dotted path"),
        ([42], "42 is not a dotted path"),
    ],
)
def test_e020_a_broken_list(value: object, message: str) -> None:
    with override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES=value):
        errors = check_allowed_callables()
    assert [e.id for e in errors] == ["django_future.E020"]
    assert message in errors[0].msg


@pytest.mark.unit
def test_w020_unset_with_debug_off() -> None:
    with override_settings(DEBUG=False):
        (warning,) = check_allowed_callables()
    assert warning.id == "django_future.W020"
    assert SETTING in warning.msg and "any dotted path" in warning.msg
    with override_settings(DEBUG=True):
        assert check_allowed_callables() == []
    with override_settings(DEBUG=False, DJANGO_FUTURE_ALLOWED_CALLABLES=["tests"]):
        assert check_allowed_callables() == []


@pytest.mark.unit
def test_a_list_holding_a_list_is_refused_not_crashed() -> None:
    with override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES=[["tests"]]):
        with pytest.raises(CallableRefusedError, match=re.escape("['tests'] is not a dotted path")):
            allowlist.prefixes()
        assert check_allowed_callables()[0].id == "django_future.E020"


@pytest.mark.unit
def test_the_setting_is_read_once_per_change_of_it() -> None:
    # A runner asks for the prefixes for every job: they are kept until the setting
    # changes (setting_changed), and an invalid list is never kept.
    with override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES=["shop.jobs"]):
        kept = allowlist.prefixes()
        assert kept == ("shop.jobs",)
        assert allowlist.prefixes() is kept
        with override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES=["billing"]):
            assert allowlist.prefixes() == ("billing",)
            assert not allowlist.allowed("shop.jobs.sweep")
        assert allowlist.prefixes() == ("shop.jobs",)
        with override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES=["shop..jobs"]):
            for _ in range(2):
                with pytest.raises(CallableRefusedError, match="is not a dotted path"):
                    allowlist.prefixes()
        with override_settings(DJANGO_FUTURE_ALLOWED_CALLABLES=None):
            assert allowlist.prefixes() is None
            assert allowlist.allowed("os.system")
        assert allowlist.prefixes() == ("shop.jobs",)
