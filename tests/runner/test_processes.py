"""Real runner processes against the real database, as cron starts them."""

from __future__ import annotations

import collections

import pytest
from django.db import connection

from django_future import schedule_job
from django_future.models import JobEvent, ScheduledJob
from tests.support import kinds, start_runner, subprocess_env
from tests.testapp.models import JobRun

JOBS = 2_000
RUNNERS = 4


def _schedule_many(n: int, callable_name: str = "tests.handlers.run_once") -> list[int]:
    return [schedule_job("0s", callable_name).pk for _ in range(n)]


@pytest.mark.slow
@pytest.mark.usefixtures("committed_db")
def test_four_runners_over_two_thousand_due_jobs_run_each_exactly_once(
    route: dict[str, str],
) -> None:
    ids = _schedule_many(JOBS)
    procs = [start_runner("--ignore-errors", **route) for _ in range(RUNNERS)]
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


@pytest.mark.usefixtures("committed_db")
def test_a_completion_commits_with_the_next_claim() -> None:
    """One round trip and one transaction per job: the completion of one job and the
    start of the next are written by the same transaction (the rows' xmin)."""
    ids = _schedule_many(3, "tests.handlers.record")
    proc = start_runner()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT job_id, kind, xmin::text FROM django_future_jobevent"
            " WHERE job_id = ANY(%s) AND kind IN ('started', 'completed')",
            [ids],
        )
        xact = {(job_id, kind): xid for job_id, kind, xid in cursor.fetchall()}
    first, second, third = ids
    assert xact[(first, "completed")] == xact[(second, "started")]
    assert xact[(second, "completed")] == xact[(third, "started")]
    assert xact[(first, "started")] != xact[(second, "started")]
    assert xact[(third, "completed")] not in {xact[(k, "started")] for k in ids}


@pytest.mark.usefixtures("committed_db")
def test_a_runner_outlives_a_migration_that_changes_the_job_table() -> None:
    """The runner prepares its claim once per connection. A column of the job table
    that changes type or goes (a migration run while a worker waits) outdates the
    prepared statement; the runner prepares it again and claims, instead of failing."""
    import psycopg

    from django_future.runner import Runner

    with psycopg.connect(subprocess_env()["DATABASE_URL"], autocommit=True) as other:
        other.execute("ALTER TABLE django_future_scheduledjob ADD COLUMN added_later integer")
        try:
            for change in (
                "ALTER TABLE django_future_scheduledjob ALTER COLUMN added_later TYPE bigint",
                "ALTER TABLE django_future_scheduledjob DROP COLUMN added_later",
            ):
                first = schedule_job("0s", "tests.handlers.record", args=[1])
                assert Runner().run().completed == [first.pk]
                other.execute(change)
                second = schedule_job("0s", "tests.handlers.record", args=[2])
                assert Runner().run().completed == [second.pk]
                assert kinds(second) == ["scheduled", "started", "completed"]
        finally:
            other.execute(
                "ALTER TABLE django_future_scheduledjob DROP COLUMN IF EXISTS added_later"
            )
            connection.close()  # later tests start without this test's prepared statements


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.usefixtures("committed_db")
def test_the_runner_prepares_its_claim_and_completion_unless_told_not_to(settings) -> None:  # type: ignore[no-untyped-def]
    from django_future.runner import Runner

    _schedule_many(2, "tests.handlers.record")
    Runner().run()
    prepared = _prepared_statements()
    assert any("django_future_claim" in s for s in prepared), prepared
    assert any("django_future_complete" in s for s in prepared), prepared

    connection.close()  # a new connection: nothing prepared yet
    settings.DJANGO_FUTURE_PREPARED_STATEMENTS = False
    _schedule_many(2, "tests.handlers.record")
    assert len(Runner().run().completed) == 2
    assert _prepared_statements() == []


@pytest.mark.usefixtures("committed_db")
def test_a_runner_goes_on_without_prepared_statements_a_pooler_drops(caplog) -> None:  # type: ignore[no-untyped-def]
    """Behind PgBouncer in transaction mode a prepared statement may be missing from the
    next server session; here it is dropped behind psycopg's back. The runner warns
    once, goes on unprepared, and loses no completion."""
    from django_future.runner import Runner

    ids = _schedule_many(3, "tests.handlers.record")
    runner = Runner()
    real_execute = runner._wire.send

    def drop_prepared_then_send(*args, **kwargs):  # type: ignore[no-untyped-def]
        if runner._executor.unrecorded:  # a completion waits: it must survive the failure
            connection.connection.pgconn.exec_(b"DEALLOCATE ALL")
        return real_execute(*args, **kwargs)

    runner._wire.send = drop_prepared_then_send  # type: ignore[method-assign]
    with caplog.at_level("WARNING", logger="django_future.runner"):
        assert runner.run().completed == ids
    assert "prepared statements do not last on this connection" in caplog.text
    assert caplog.text.count("prepared statements do not last") == 1
    assert all(kinds(i) == ["scheduled", "started", "completed"] for i in ids)


@pytest.mark.usefixtures("committed_db")
def test_a_runner_goes_on_without_prepared_statements_another_client_named_alike(caplog) -> None:  # type: ignore[no-untyped-def]
    """Behind PgBouncer in transaction mode the server session may hold another runner's
    statement under the name psycopg gives this runner's first one (``_pg3_0``); the
    runner warns once and goes on unprepared, instead of failing (seen with 4 runners
    through PgBouncer 1.18)."""
    from django_future.runner import Runner

    ids = _schedule_many(2, "tests.handlers.record")
    connection.close()  # a new session, whose psycopg has prepared nothing yet
    connection.ensure_connection()
    connection.connection.pgconn.exec_(b"PREPARE _pg3_0 AS SELECT 1")
    try:
        with caplog.at_level("WARNING", logger="django_future.runner"):
            assert Runner().run().completed == ids
    finally:
        connection.connection.pgconn.exec_(b"DEALLOCATE ALL")
    assert caplog.text.count("prepared statements do not last") == 1
    assert all(kinds(i) == ["scheduled", "started", "completed"] for i in ids)
