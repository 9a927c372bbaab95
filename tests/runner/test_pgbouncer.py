"""Through a real PgBouncer in transaction pooling mode (tests/pgbouncer.py): scheduling one
job and many, cron runners, and workers, each in its own process whose DATABASE_URL is
PgBouncer's. Set up as docs/operations.md says: no prepared statements, and a worker's LISTEN
on a direct connection (or none: it polls, and says so).

The 4-runner concurrency test and the kill -9 recovery test run through PgBouncer too: they
take the ``route`` fixture (tests/runner/test_processes.py, test_process_failures.py).
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys

import psycopg.conninfo
import pytest

from django_future import ledger, schedule_job
from django_future.models import JobEvent, RunnerProcess, ScheduledJob
from django_future.scheduler import BULK_CHUNK
from tests.support import ROOT, start_runner, subprocess_env, wait_until
from tests.testapp.models import JobRun

pytestmark = [pytest.mark.pgbouncer, pytest.mark.usefixtures("committed_db")]

MANY = BULK_CHUNK * 2 + 7  # several chunks of schedule_jobs' pipeline

SCHEDULE = f"""
import json, django
django.setup()
from django.db import connection
from django_future import schedule_job, schedule_jobs
one = schedule_job("0s", "tests.handlers.run_once", retries=2, lock="pgbouncer-lock")
many = schedule_jobs(
    [{{"date": "0s", "callable_name": "tests.handlers.run_once", "queue": "default"}}
     for _ in range({MANY})]
)
print(json.dumps({{"one": one.pk, "many": many, "port": connection.settings_dict["PORT"]}}))
"""


def _through(url: str) -> dict[str, str]:
    env = subprocess_env()
    env.update(DATABASE_URL=url, DJANGO_FUTURE_PREPARED_STATEMENTS="0")
    return env


def test_schedule_job_schedule_jobs_and_cron_runners_through_pgbouncer(pgbouncer_url: str) -> None:
    port = psycopg.conninfo.conninfo_to_dict(pgbouncer_url)["port"]
    done = subprocess.run(
        [sys.executable, "-c", SCHEDULE],
        cwd=ROOT,
        env=_through(pgbouncer_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert str(result["port"]) == str(port)  # the process's database was PgBouncer
    ids = [result["one"], *result["many"]]
    assert len(set(ids)) == MANY + 1
    assert ScheduledJob.objects.filter(pk__in=ids, status="scheduled").count() == MANY + 1

    # Cron runners, as `runscheduledjobs -d` from crontab, three at once, through PgBouncer,
    # left to prepare their statements (the default): each finds its statements missing
    # or another's (PgBouncer 1.18 keeps none per client; psycopg names them alike), and
    # goes on without them instead of failing.
    procs = [start_runner("-d", "-i", DATABASE_URL=pgbouncer_url) for _ in range(3)]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert sorted(JobRun.objects.values_list("job_id", flat=True)) == sorted(ids)
    assert not ScheduledJob.objects.filter(pk__in=ids).exists()  # -d removed the rows
    started = collections.Counter(
        JobEvent.objects.filter(job_id__in=ids, kind="started").values_list("job_id", flat=True)
    )
    assert len(started) == MANY + 1 and set(started.values()) == {1}
    assert JobEvent.objects.filter(job_id__in=ids, kind="completed").count() == MANY + 1
    assert ledger.verify() == []


def _worker(route: dict[str, str], **env: str) -> subprocess.Popen[str]:
    # A lease and a poll interval longer than the run: only a NOTIFY wakes this worker
    # before its time limit.
    settings = {"DJANGO_FUTURE_LEASE": "120", "DJANGO_FUTURE_POLL_INTERVAL": "300"}
    proc = start_runner("--worker", "--time-limit", "60", **{**settings, **route, **env})
    wait_until(lambda: RunnerProcess.objects.filter(pid=proc.pid).exists(), what="the worker")
    return proc


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def test_a_worker_behind_pgbouncer_listens_on_its_direct_connection(pgbouncer_url: str) -> None:
    route = {
        "DATABASE_URL": pgbouncer_url,
        "LISTEN_DATABASE_URL": subprocess_env()["DATABASE_URL"],
        "DJANGO_FUTURE_PREPARED_STATEMENTS": "0",
    }
    worker = _worker(route)
    for n in range(3):
        job = schedule_job("0s", "tests.handlers.run_once")
        # Woken by the NOTIFY of the commit: well before the 60 s a missed one would take.
        wait_until(
            lambda job=job: JobRun.objects.filter(job_id=job.pk).exists(),
            timeout=20,
            what=f"job {n} to run on NOTIFY",
        )
    err = _stop(worker)
    assert "does not LISTEN" not in err
    assert set(ScheduledJob.objects.values_list("status", flat=True)) == {"complete"}


def test_a_worker_without_listen_polls_and_says_so(pgbouncer_url: str) -> None:
    route = {
        "DATABASE_URL": pgbouncer_url,
        "LISTEN_DATABASE_URL": "none",
        "DJANGO_FUTURE_PREPARED_STATEMENTS": "0",
    }
    worker = _worker(route, DJANGO_FUTURE_POLL_INTERVAL="1")
    job = schedule_job("0s", "tests.handlers.run_once")
    wait_until(lambda: JobRun.objects.filter(job_id=job.pk).exists(), what="a poll to find it")
    err = _stop(worker)
    assert "DJANGO_FUTURE_LISTEN_DATABASE is None: this worker does not LISTEN" in err
    assert "every 1.0 s" in err
