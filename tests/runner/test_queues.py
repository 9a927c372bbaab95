"""Which jobs a runner takes, and in what order: larger priority first, then the oldest
due, then the smaller id; only the queues it serves (``--queue``, ``--exclude-queue``)."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time

import pytest

from django_future import run_jobs, schedule_job
from django_future.models import JobEvent, RunnerProcess, ScheduledJob
from django_future.runner import Runner
from tests.support import db_now, fresh, kinds, start_runner, wait_until


def started_order(ids: list[int]) -> list[int]:
    """The jobs among ``ids`` in the order their "started" events were appended."""
    return list(
        JobEvent.objects.filter(job_id__in=ids, kind="started")
        .order_by("id")
        .values_list("job_id", flat=True)
    )


def mixed_jobs() -> dict[str, int]:
    """Due jobs of several priorities and due times, scheduled in an order that matches
    none of the orders the claim could wrongly take (by id, or by due time alone)."""
    now = db_now()
    minute = dt.timedelta(minutes=1)
    plan = [
        ("low-oldest", -5, now - 9 * minute),
        ("mid-newer", 0, now - 1 * minute),
        ("high-newest", 50, now - 1 * minute),
        ("mid-older", 0, now - 5 * minute),
        ("high-older", 50, now - 3 * minute),
        ("mid-older-twin", 0, now - 5 * minute),  # same due time as mid-older: by id
        ("top", 100, now),
    ]
    return {
        name: schedule_job(when, "tests.handlers.record", args=[name], priority=rank).pk
        for name, rank, when in plan
    }


EXPECTED = [
    "top",
    "high-older",
    "high-newest",
    "mid-older",
    "mid-older-twin",
    "mid-newer",
    "low-oldest",
]


@pytest.mark.django_db
@pytest.mark.parametrize("batch_size", [1, 3])
def test_larger_priority_first_then_due_time_then_id(batch_size: int) -> None:
    jobs = mixed_jobs()
    report = Runner(batch_size=batch_size).run()
    by_id = {pk: name for name, pk in jobs.items()}
    assert [by_id[pk] for pk in report.completed] == EXPECTED  # the order of the calls
    if batch_size == 1:
        # One claim per job: the started events follow the claim order. (A batch's
        # are appended by one statement, in no order that means anything.)
        assert [by_id[pk] for pk in started_order(list(jobs.values()))] == EXPECTED


@pytest.mark.django_db
def test_a_future_job_of_higher_priority_waits_for_its_time() -> None:
    later = schedule_job("1h", "tests.handlers.record", priority=100)
    due = schedule_job("0s", "tests.handlers.record", priority=-100)
    assert run_jobs().completed == [due.pk]
    assert fresh(later).status == "scheduled"


@pytest.mark.django_db
def test_run_jobs_takes_only_the_queues_asked_for() -> None:
    emails = [schedule_job("0s", "tests.handlers.record", queue="emails") for _ in range(2)]
    reports = schedule_job("0s", "tests.handlers.record", queue="reports")
    plain = schedule_job("0s", "tests.handlers.record")
    assert run_jobs(queues=["emails"]).completed == [j.pk for j in emails]
    assert kinds(reports) == kinds(plain) == ["scheduled"]
    assert run_jobs(exclude_queues=["reports"]).completed == [plain.pk]
    assert kinds(reports) == ["scheduled"]
    assert run_jobs(queues=["reports", "emails"], exclude_queues=["emails"]).completed == [
        reports.pk
    ]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"queues": "emails"}, TypeError),
        ({"exclude_queues": "emails"}, TypeError),
        ({"queues": []}, ValueError),
        ({"queues": ["emails", ""]}, ValueError),
        ({"exclude_queues": [None]}, ValueError),
    ],
)
def test_queue_selections_that_mean_nothing_are_refused(
    options: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        Runner(**options)  # type: ignore[arg-type]


# --- real runner processes ---------------------------------------------------------


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.mark.usefixtures("committed_db")
def test_runners_with_queue_emails_never_take_a_reports_job() -> None:
    emails = [schedule_job("0s", "tests.handlers.run_once", queue="emails") for _ in range(30)]
    reports = [schedule_job("0s", "tests.handlers.run_once", queue="reports") for _ in range(30)]
    runners = [start_runner("--queue", "emails", "--batch-size", str(n)) for n in (1, 4)]
    for proc in runners:
        code, _out, err = finish(proc)
        assert code == 0, err
    assert {fresh(j).status for j in emails} == {"complete"}
    assert all(kinds(j) == ["scheduled"] for j in reports)
    # Left out by name, the emails' queue stays untouched the other way round.
    more = schedule_job("0s", "tests.handlers.run_once", queue="emails")
    code, _out, err = finish(start_runner("--exclude-queue", "emails", "--queue", "reports"))
    assert code == 0, err
    assert {fresh(j).status for j in reports} == {"complete"}
    assert kinds(more) == ["scheduled"]


@pytest.mark.usefixtures("committed_db")
def test_a_runner_process_runs_larger_priorities_first() -> None:
    jobs = mixed_jobs()
    code, _out, err = finish(start_runner())
    assert code == 0, err
    by_id = {pk: name for name, pk in jobs.items()}
    assert [by_id[pk] for pk in started_order(list(jobs.values()))] == EXPECTED


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
@pytest.mark.usefixtures("committed_db")
def test_a_worker_sleeps_past_due_jobs_of_other_queues_and_wakes_for_its_own() -> None:
    """A due job of a queue the worker does not serve must not wake it (it would claim
    nothing and sleep no time, over and over); a job of its queue wakes it at once."""
    other = schedule_job("0s", "tests.handlers.record", queue="reports")
    worker = start_runner(
        "--worker", "--queue", "emails", "--time-limit", "30", DJANGO_FUTURE_POLL_INTERVAL="60"
    )
    wait_until(lambda: RunnerProcess.objects.filter(pid=worker.pid).exists(), what="the worker")
    time.sleep(1.0)  # past start-up
    before = cpu_seconds(worker.pid)
    time.sleep(2.0)
    assert cpu_seconds(worker.pid) - before < 0.5, "the worker spins on another queue's job"
    job = schedule_job("0s", "tests.handlers.record", queue="emails")
    # Its poll interval is a minute: only the NOTIFY sent at commit can wake it in time.
    wait_until(lambda: fresh(job).status == "complete", timeout=15, what="the worker to wake")
    worker.send_signal(signal.SIGTERM)
    code, _out, err = finish(worker)
    assert code == 0, err
    assert kinds(other) == ["scheduled"]
    assert ScheduledJob.objects.get(pk=other.pk).status == "scheduled"


@pytest.mark.usefixtures("committed_db")
def test_bad_queue_names_on_the_command_line_are_refused() -> None:
    code, _out, err = finish(start_runner("--queue", "two words"))
    assert code == 2 and "is not a queue name" in err
    assert not RunnerProcess.objects.exists()
