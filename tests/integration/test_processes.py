"""Real runner processes against the real database, as cron starts them."""

from __future__ import annotations

import collections

import pytest

from django_future import schedule_job
from django_future.models import JobEvent, ScheduledJob
from tests.integration.conftest import kinds, start_runner
from tests.testapp.models import JobRun

JOBS = 2_000
RUNNERS = 4


def _schedule_many(n: int, callable_name: str = "tests.handlers.run_once") -> list[int]:
    return [schedule_job("0s", callable_name).pk for _ in range(n)]


@pytest.mark.slow
@pytest.mark.usefixtures("committed_db")
def test_four_runners_over_two_thousand_due_jobs_run_each_exactly_once() -> None:
    ids = _schedule_many(JOBS)
    procs = [start_runner("--ignore-errors") for _ in range(RUNNERS)]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    for proc, _out, err in results:
        assert proc.returncode == 0, err

    # Every job wrote exactly one row under a unique constraint on its id.
    assert JobRun.objects.count() == JOBS
    assert sorted(JobRun.objects.values_list("job_id", flat=True)) == sorted(ids)
    assert ScheduledJob.objects.filter(pk__in=ids, status="complete").count() == JOBS
    # ...and the ledger says each started once, in one of the runner processes.
    started = collections.Counter(
        JobEvent.objects.filter(job_id__in=ids, kind="started").values_list("job_id", flat=True)
    )
    assert set(started.values()) == {1} and len(started) == JOBS
    by_runner = collections.Counter(
        JobEvent.objects.filter(job_id__in=ids, kind="started").values_list("runner", flat=True)
    )
    pids = {str(p.pid) for p in procs}
    assert {runner.rsplit(":", 1)[1] for runner in by_runner} <= pids
    assert len(by_runner) >= 2, f"the runners did not overlap: {by_runner}"
    # The job's own record of who ran it agrees with the ledger's.
    for job_id, pid in JobRun.objects.values_list("job_id", "pid")[:50]:
        runner = JobEvent.objects.get(job_id=job_id, kind="started").runner
        assert runner is not None and runner.endswith(f":{pid}")


@pytest.mark.usefixtures("committed_db")
def test_runner_process_stops_at_first_failure_with_traceback_and_exit_1() -> None:
    bad_job = schedule_job("0s", "tests.handlers.boom", args=["card declined"])
    proc = start_runner()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in err
    assert "ValueError: card declined" in err
    assert f"job {bad_job.pk} (tests.handlers.boom) failed" in err
    assert "--ignore-errors" in err
    assert out == ""
    assert kinds(bad_job) == ["scheduled", "started", "failed"]


@pytest.mark.usefixtures("committed_db")
def test_runner_process_is_silent_on_success_and_reports_at_verbosity_2() -> None:
    _schedule_many(3, "tests.handlers.record")
    proc = start_runner()
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out, err) == (0, "", "")
    _schedule_many(2, "tests.handlers.record")
    proc = start_runner("-v", "2")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert "2 completed, 0 failed, 0 expired" in out
