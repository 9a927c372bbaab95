"""A cron pass, as a newcomer meets it: it ends, it stops at the first Ctrl-C, it says
what it ran at -v 2 in a project with no LOGGING, and it reports a failure once."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from django_future import run_jobs, schedule_job
from django_future.models import ScheduledJob
from tests.support import ROOT, db_now, kinds, start_runner, subprocess_env, wait_until
from tests.testapp.models import JobRun

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("committed_db")]


def test_a_job_that_reschedules_itself_at_once_runs_once_per_pass() -> None:
    first = schedule_job("0s", "tests.handlers.again")
    report = run_jobs()
    assert report.completed.total == 1
    (copy,) = ScheduledJob.objects.exclude(pk=first.pk)
    assert copy.status == "scheduled"  # due now, but not when the pass started
    # The next pass takes the copy, and leaves its own copy for the pass after.
    assert run_jobs().completed.total == 1
    assert ScheduledJob.objects.get(pk=copy.pk).status == "complete"
    assert ScheduledJob.objects.filter(status="scheduled").count() == 1


def test_runscheduledjobs_ends_when_its_job_reschedules_itself() -> None:
    schedule_job("0s", "tests.handlers.again")
    proc = start_runner("-v", "2")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "done: 1 completed, 0 failed, 0 expired" in out
    assert ScheduledJob.objects.filter(status="scheduled").count() == 1


def test_a_failed_attempt_retried_without_delay_waits_for_the_next_pass() -> None:
    job = schedule_job("0s", "tests.handlers.fails_until", args=[2], retries=1, retry_delay="0s")
    report = run_jobs()
    assert (report.retried.total, report.completed.total) == (1, 0)
    assert kinds(job) == ["scheduled", "started", "failed", "retry"]
    assert run_jobs().completed.total == 1
    assert kinds(job)[-1] == "completed"


def _python(code: str, **env: str) -> subprocess.Popen[str]:
    environ = subprocess_env()
    environ.update(env)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("how", ["run_jobs", "runscheduledjobs"])
def test_the_first_sigint_starts_the_drain(how: str) -> None:
    jobs = [schedule_job("0s", "tests.handlers.slow", args=[0.3]) for _ in range(40)]
    if how == "run_jobs":  # called from Python, as in a shell: nobody installed a handler
        proc = _python(
            """
            import django
            django.setup()
            from django_future import run_jobs
            print("returned:", run_jobs())
            """
        )
    else:
        proc = start_runner()
    wait_until(lambda: JobRun.objects.count() >= 2, what="two jobs to have run")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopping after the job in hand" in err
    assert "Traceback" not in err and "Exception ignored" not in err
    ran = JobRun.objects.count()
    assert 2 <= ran < len(jobs)
    statuses = list(ScheduledJob.objects.values_list("status", flat=True))
    assert statuses.count("complete") == ran
    assert statuses.count("scheduled") == len(jobs) - ran  # untouched, for the next pass
    if how == "run_jobs":
        assert f"returned: {ran} completed, 0 failed, 0 expired" in out


def test_verbose_prints_each_job_in_a_project_without_logging(tmp_path: Path) -> None:
    # A plain project: no LOGGING setting, so Django's defaults, which show nothing of
    # django_future below WARNING.
    (tmp_path / "plain_settings.py").write_text("from tests.settings import *\n\ndel LOGGING\n")
    done = schedule_job("0s", "tests.handlers.record", args=[1])
    gone = schedule_job(db_now() - dt.timedelta(hours=1), "tests.handlers.record", expires="30m")
    pythonpath = f"{tmp_path}:{ROOT}"
    proc = start_runner("-v", "2", DJANGO_SETTINGS_MODULE="plain_settings", PYTHONPATH=pythonpath)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"job {done.pk} (tests.handlers.record) started, attempt 1" in out
    assert f"job {done.pk} (tests.handlers.record) completed: recorded [1] {{}}" in out
    assert f"job {gone.pk} expired before it could run" in out
    assert err == ""
    # At the default verbosity a pass that went well prints nothing (cron mails output).
    schedule_job("0s", "tests.handlers.record")
    proc = start_runner(DJANGO_SETTINGS_MODULE="plain_settings", PYTHONPATH=pythonpath)
    assert proc.communicate(timeout=60) == ("", "")


def test_a_failing_job_is_reported_once() -> None:
    job = schedule_job("0s", "tests.handlers.boom")
    proc = start_runner()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert out == ""
    assert err.count("ValueError: boom") == 1, err
    assert err.count("Traceback (most recent call last)") == 1, err
    assert err.startswith(f"CommandError: job {job.pk} (tests.handlers.boom) failed;"), err
    assert f"scheduledjobs show {job.pk}" in err and "--ignore-errors" in err
    assert kinds(job) == ["scheduled", "started", "failed"]


def test_a_job_whose_window_closes_during_the_pass_expires_instead_of_running() -> None:
    now = db_now()
    first = schedule_job(now - dt.timedelta(seconds=2), "tests.handlers.slow", args=[1.5])
    # Due when the pass starts, but its window closes while the first job runs.
    late = schedule_job(now - dt.timedelta(seconds=0.5), "tests.handlers.record", expires="1s")
    report = run_jobs()
    assert (report.completed.total, list(report.expired)) == (1, [late.pk])
    assert kinds(first)[-1] == "completed"
    assert kinds(late) == ["scheduled", "expired"]
