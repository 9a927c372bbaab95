"""Runners in real processes, killed, signalled and cut off from the database.

Leases are short here (DJANGO_FUTURE_LEASE in the runner's environment) so that
recovery happens within the test; the mechanism is the same at the default 30 s.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from django.db import connection

from django_future import audit, schedule_job
from django_future.models import JobEvent, RunnerProcess, ScheduledJob
from tests.support import event, fresh, kinds, start_runner, wait_until
from tests.testapp.models import JobRun, Order

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("committed_db")]


def status(job: ScheduledJob) -> str:
    return fresh(job).status


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_runner_killed_mid_job_is_recovered_by_the_next_runner(route: dict[str, str]) -> None:
    job = schedule_job("0s", "tests.handlers.slow", args=[30], retries=1, retry_delay="1s")
    first = start_runner(lease=1, **route)
    wait_until(lambda: JobRun.objects.filter(job_id=job.pk).exists(), what="the job to start")
    first.send_signal(signal.SIGKILL)
    finish(first, timeout=10)
    assert status(job) == "running"  # nothing could record anything: kill -9

    # The dead runner's lease runs out within a second; a runner started after that,
    # as cron would, finds the job, records why, and retries it by its policy.
    dead = RunnerProcess.objects.get(pk=event(job, "started").data["runner_id"])
    assert dead.pid == first.pid and dead.stopped_at is None
    # `scheduledjobs status` claims no life: it shows the silence growing, and the
    # jobs recoverable once the lease has run out.
    time.sleep(1.2)
    (held,) = audit.status()["runners"]
    assert held["runner"].endswith(f":{first.pid}") and held["running"] == 1
    assert held["last_heartbeat_age_s"] >= 1.0 and held["lease_left_s"] <= 0
    assert held["stopped"] is False
    second = start_runner("--worker", "--time-limit", "8", "-v", "2", lease=1, **route)
    wait_until(
        lambda: status(job) == "running" and JobRun.objects.filter(job_id=job.pk).count() == 2,
        what="the retry to start",
    )
    second.send_signal(signal.SIGKILL)  # the retry sleeps 30 s too; we have seen enough
    finish(second, timeout=10)

    assert kinds(job)[:5] == ["scheduled", "started", "abandoned", "retry", "started"]
    abandoned = JobEvent.objects.get(job_id=job.pk, kind="abandoned")
    assert abandoned.runner is not None and abandoned.runner.endswith(f":{second.pid}")
    assert abandoned.data["lost_runner"].endswith(f":{first.pid}")
    assert "stopped renewing its lease" in abandoned.data["error"]
    retry = JobEvent.objects.get(job_id=job.pk, kind="retry")
    assert retry.data["attempt"] == 2 and "RunnerLost" in retry.data["reason"]
    assert event(job, "started", 1).runner.endswith(f":{second.pid}")  # type: ignore[union-attr]
    # Leave nothing running for the clean-up's verify: one last runner fails it for good.
    third = start_runner("-i", lease=1, **route)
    wait_until(
        lambda: finish(third)[0] == 0 and status(job) == "failed",
        timeout=20,
        what="the last attempt to be abandoned",
    )


def test_a_runner_killed_mid_batch_leaves_its_whole_batch_to_recovery() -> None:
    """The price of --batch-size: a batch starts together, so a runner killed in it
    leaves every job of the batch abandoned, called or not. Jobs with retries run again."""
    jobs = [
        schedule_job("0s", "tests.handlers.slow", args=[1.5], retries=1, retry_delay="1s")
        for _ in range(3)
    ]
    first = start_runner("--batch-size", "3", lease=1)
    wait_until(lambda: JobRun.objects.filter(job_id=jobs[0].pk).exists(), what="the first call")
    first.send_signal(signal.SIGKILL)
    finish(first, timeout=10)
    assert [status(job) for job in jobs] == ["running"] * 3
    wait_until(
        lambda: (
            finish(start_runner("-i", lease=1))[0] == 0
            and all(status(job) == "complete" for job in jobs)
        ),
        timeout=30,
        what="the batch to be recovered and retried",
    )
    for job in jobs:
        assert kinds(job) == ["scheduled", "started", "abandoned", "retry", "started", "completed"]
    # The first job was called twice; the others only by their retry.
    assert [JobRun.objects.filter(job_id=job.pk).count() for job in jobs] == [2, 1, 1]


def test_a_live_runner_keeps_its_job_however_long_it_runs() -> None:
    job = schedule_job("0s", "tests.handlers.slow", args=[4], retries=3, retry_delay="1s")
    owner = start_runner(lease=1)  # heartbeat every 1/3 s; the job takes 4 s, four leases
    wait_until(lambda: status(job) == "running", what="the job to start")
    others = [start_runner(lease=1) for _ in range(3)]
    for other in others:
        assert finish(other)[0] == 0
    assert finish(owner)[0] == 0
    assert kinds(job) == ["scheduled", "started", "completed"]
    assert event(job, "started").runner.endswith(f":{owner.pid}")  # type: ignore[union-attr]


def test_sigterm_mid_batch_finishes_the_job_in_hand_and_hands_back_the_rest() -> None:
    jobs = [schedule_job("0s", "tests.handlers.slow", args=[1.5]) for _ in range(5)]
    runner = start_runner("--batch-size", "5", lease=2)
    wait_until(
        lambda: JobRun.objects.filter(job_id=jobs[0].pk).exists(), what="the first job's call"
    )
    runner.send_signal(signal.SIGTERM)
    code, out, err = finish(runner)
    assert code == 0, err
    assert "stopping after the job in hand" in err
    assert "stopped by signal: 1 completed" in out
    assert status(jobs[0]) == "complete"
    for job in jobs[1:]:
        assert kinds(job) == ["scheduled", "started", "released"]
        assert status(job) == "scheduled"
    assert RunnerProcess.objects.get(pid=runner.pid).stopped_at is not None


def test_second_signal_exits_at_once() -> None:
    job = schedule_job("0s", "tests.handlers.slow", args=[30])
    runner = start_runner(lease=30)
    # Its call recorded, not only its claim: a signal between the two hands it back.
    wait_until(lambda: JobRun.objects.filter(job_id=job.pk).exists(), what="the job's call")
    runner.send_signal(signal.SIGINT)
    time.sleep(0.5)  # two signals before Python runs its handler count as one
    runner.send_signal(signal.SIGINT)
    code, _out, err = finish(runner, timeout=10)
    assert code == 128 + signal.SIGINT, err
    assert "second signal, exiting at once" in err
    assert status(job) == "running"  # left for recovery once its lease runs out
    # It did not sign off, so the job is recovered only when the lease runs out.
    assert RunnerProcess.objects.get(pid=runner.pid).stopped_at is None
    with connection.cursor() as cursor:  # let the clean-up's verify see a settled ledger
        cursor.execute(
            "UPDATE django_future_runnerprocess SET lease_expires_at = now() WHERE pid = %s",
            [runner.pid],
        )
    assert finish(start_runner("-i"))[0] == 0
    assert kinds(job)[-1] == "abandoned"


def test_lost_database_connection_ends_the_runner_clearly_and_the_job_is_recovered() -> None:
    job = schedule_job("0s", "tests.handlers.slow", args=[1.5], retries=1, retry_delay="1s")
    runner = start_runner(lease=30)
    wait_until(lambda: JobRun.objects.filter(job_id=job.pk).exists(), what="the job's call")
    backend = event(job, "started").data["backend_pid"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
        assert cursor.fetchone() == (True,)
    code, out, err = finish(runner)
    assert code == 2, (out, err)
    assert (
        f"lost the database connection while job {job.pk} (tests.handlers.slow) was in hand" in err
    )
    assert "Traceback" not in err
    assert out == ""
    # The runner signed off through its heartbeat connection, so the next runner
    # recovers the job at once, without waiting for the 30 s lease.
    assert RunnerProcess.objects.get(pid=runner.pid).stopped_at is not None
    code, _out, err = finish(start_runner("--worker", "--time-limit", "5", lease=30))
    assert code == 0, err
    assert kinds(job) == [
        "scheduled",
        "started",
        "abandoned",
        "retry",
        "started",
        "completed",
    ]
    abandoned = JobEvent.objects.get(job_id=job.pk, kind="abandoned")
    assert "stopped without finishing the job" in abandoned.data["error"]


def test_retries_reach_success_and_exhaustion_in_a_worker() -> None:
    recovers = schedule_job(
        "0s", "tests.handlers.fails_until", args=[3], retries=3, retry_delay="1s"
    )
    gives_up = schedule_job("0s", "tests.handlers.boom", retries=2, retry_delay="1s")
    code, _out, err = finish(start_runner("--worker", "--time-limit", "6", "-i", lease=5))
    assert code == 0, err
    assert ScheduledJob.objects.get(pk=recovers.pk).return_value == "succeeded on attempt 3"
    assert kinds(recovers).count("retry") == 2
    failed = ScheduledJob.objects.get(pk=gives_up.pk)
    assert (failed.status, failed.attempts) == ("failed", 3)
    delays = [
        e.data["delay"]
        for e in JobEvent.objects.filter(job_id=gives_up.pk, kind="retry").order_by("seq")
    ]
    assert delays == [1, 2]


def test_atomic_job_that_raises_leaves_no_partial_writes_but_a_plain_one_does() -> None:
    atomic = schedule_job("0s", "tests.handlers.write_then_fail", args=["A-1"], atomic=True)
    plain = schedule_job("0s", "tests.handlers.write_then_fail", args=["P-1"])
    ok = schedule_job("0s", "tests.handlers.write", args=["A-2"], atomic=True)
    assert finish(start_runner("-i"))[0] == 0
    assert not Order.objects.filter(number="A-1").exists()
    assert status(atomic) == "failed"
    assert Order.objects.filter(number="P-1").exists() and status(plain) == "failed"
    assert Order.objects.filter(number="A-2").exists() and status(ok) == "complete"


def test_worker_sleeps_until_notified_of_a_new_job() -> None:
    worker = start_runner("--worker", "--time-limit", "20", DJANGO_FUTURE_POLL_INTERVAL="60")
    wait_until(lambda: RunnerProcess.objects.filter(pid=worker.pid).exists(), what="the worker")
    job = schedule_job("0s", "tests.handlers.record")
    # Its poll interval is a minute: only the NOTIFY sent at commit can wake it in time.
    wait_until(lambda: status(job) == "complete", timeout=15, what="the worker to wake")
    worker.send_signal(signal.SIGTERM)
    code, _out, err = finish(worker)
    assert code == 0, err


def test_bad_command_line_values_are_refused_clearly() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    code, _out, err = finish(start_runner("--batch-size", "0"))
    assert code == 2 and "--batch-size: must be 1 or more, not 0" in err
    code, _out, err = finish(start_runner("--time-limit", "soon"))
    assert code == 2 and "'soon' is not a number of seconds" in err
    # Refused before anything starts: no runner registered, the due job untouched.
    assert not RunnerProcess.objects.exists()
    assert kinds(job) == ["scheduled"]
