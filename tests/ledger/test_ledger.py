"""The ledger: append-only in the database, folded into the projection, rebuildable."""

from __future__ import annotations

import datetime as dt
import json

import pgtrigger
import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError, ProgrammingError

from django_future import ledger, run_jobs, schedule_job
from django_future.ledger import JobGoneError
from django_future.models import PROJECTION_GUARD, EventKind, JobEvent, ScheduledJob
from tests.support import kinds

pytestmark = pytest.mark.django_db


def sql(statement: str, params: object = None) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "UPDATE django_future_jobevent SET kind = 'completed'",
            "UPDATE on django_future_jobevent refused",
        ),
        (
            "UPDATE django_future_jobevent SET data = '{}' WHERE seq = 1",
            "the job ledger is append-only",
        ),
        ("DELETE FROM django_future_jobevent", "DELETE on django_future_jobevent refused"),
        ("TRUNCATE django_future_jobevent", "TRUNCATE refused: the job ledger is append-only"),
        ("TRUNCATE django_future_jobevent CASCADE", "TRUNCATE refused"),
        (
            "UPDATE django_future_scheduledjob SET status = 'complete'",
            "UPDATE on django_future_scheduledjob refused",
        ),
        ("DELETE FROM django_future_scheduledjob", "DELETE on django_future_scheduledjob refused"),
        (  # the guard fires per statement: a write that matches no row is refused too
            "UPDATE django_future_scheduledjob SET status = 'complete' WHERE id < 0",
            "UPDATE on django_future_scheduledjob refused",
        ),
        (
            "TRUNCATE django_future_scheduledjob",
            "TRUNCATE refused: jobs change only by appending events",
        ),
        (
            "INSERT INTO django_future_scheduledjob (callable_name, args, kwargs, time_slot_start,"
            " status, created_at, last_seq) VALUES ('x.y', '[]', '{}', now(), 'scheduled', now(), 1)",
            "INSERT on django_future_scheduledjob refused",
        ),
    ],
)
def test_the_database_refuses_writes_that_bypass_the_ledger(statement: str, message: str) -> None:
    job = schedule_job("0s", "tests.handlers.record")
    # Fire the deferred foreign-key checks now: TRUNCATE refuses to run while
    # they are pending, which would hide whether our trigger refuses it.
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    with pytest.raises(ProgrammingError, match=message), transaction.atomic():
        sql(statement)
    assert kinds(job) == ["scheduled"]
    assert ScheduledJob.objects.get(pk=job.pk).status == "scheduled"


def test_orm_bulk_writes_are_refused_too() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    with pytest.raises(ProgrammingError, match="append-only"), transaction.atomic():
        JobEvent.objects.filter(job_id=job.pk).update(kind="completed")
    with pytest.raises(ProgrammingError, match="append-only"), transaction.atomic():
        JobEvent.objects.filter(job_id=job.pk).delete()
    with (
        pytest.raises(ProgrammingError, match="jobs change only by appending"),
        transaction.atomic(),
    ):
        ScheduledJob.objects.filter(pk=job.pk).update(status="complete")


def test_an_event_appended_by_hand_in_sql_moves_the_job() -> None:
    job = schedule_job("1d", "tests.handlers.record")
    sql(
        "INSERT INTO django_future_jobevent (job_id, seq, kind, data) VALUES (%s, 2, 'expired', %s)",
        [job.pk, json.dumps({"reason": "by hand"})],
    )
    job = ScheduledJob.objects.get(pk=job.pk)
    assert job.status == "expired" and job.last_seq == 2


def test_a_whole_job_can_be_scheduled_from_sql() -> None:
    """Bulk loads are a plain INSERT into the ledger; the fold makes the rows."""
    (job_id,) = sql(
        "INSERT INTO django_future_jobevent (job_id, seq, kind, data) "
        "VALUES (nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1, 'scheduled',"
        " jsonb_build_object('callable_name', 'tests.handlers.record', 'args', '[7]'::jsonb,"
        " 'time_slot_start', now())) RETURNING job_id"
    )[0]
    job = ScheduledJob.objects.get(pk=job_id)
    assert (job.callable_name, job.args, job.kwargs, job.time_slot_end) == (
        "tests.handlers.record",
        [7],
        {},
        None,
    )


_NEW_ID = "nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id'))"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"time_slot_start": "2030-01-02T00:00Z", "time_slot_end": "2030-01-01T00:00Z"},
            r"job \d+ cannot expire \(2030-01-01 00:00:00\+00\) before it is due"
            r" \(2030-01-02 00:00:00\+00\)",
        ),
        (
            {"time_slot_start": "2030-01-02T00:00Z", "retries": -1},
            r"job \d+: retries must be 0 or more, got -1",
        ),
    ],
)
@pytest.mark.parametrize("writer", ["fold", "bulk"])
def test_scheduled_refuses_a_reversed_window_and_negative_retries(
    data: dict[str, object], message: str, writer: str
) -> None:
    """What CHECK constraints on the job table would refuse (it has none: fold.sql says
    why), "scheduled" refuses, by either road a job is created: an event folded by the
    trigger, or the bulk writer, which inlines the same transition."""
    data = {"callable_name": "tests.handlers.record", **data}
    with pytest.raises(DatabaseError, match=message), transaction.atomic():
        if writer == "fold":
            sql(
                "INSERT INTO django_future_jobevent (job_id, seq, kind, data)"
                f" VALUES ({_NEW_ID}, 1, 'scheduled', %s)",
                [json.dumps(data)],
            )
        else:
            sql("SELECT django_future_schedule_lines(%s)", [json.dumps(data)])
    assert not JobEvent.objects.exists() and not ScheduledJob.objects.exists()


def test_a_retry_due_after_the_window_is_refused() -> None:
    # A retry two hours on would fall after the window: the runner leaves the job failed,
    # with an attempt left, and a retry written by hand must stay inside the window too.
    job = schedule_job("0s", "tests.handlers.boom", expires="1h", retries=1, retry_delay="2h")
    run_jobs(ignore_errors=True)
    job = ScheduledJob.objects.get(pk=job.pk)
    assert (job.status, job.attempts, job.max_attempts) == ("failed", 1, 2)
    assert job.time_slot_end is not None

    def retry(due: dt.datetime) -> None:
        sql(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, data)"
            " VALUES (%s, %s, 'retry', %s)",
            [job.pk, job.last_seq + 1, json.dumps({"due": due.isoformat()})],
        )

    with pytest.raises(DatabaseError, match=r"cannot be retried at .*: its window closed at"):
        with transaction.atomic():
            retry(job.time_slot_end + dt.timedelta(seconds=1))
    assert kinds(job) == ["scheduled", "started", "failed"]
    retry(job.time_slot_end)  # the last moment of the window is inside it
    job = ScheduledJob.objects.get(pk=job.pk)
    assert (job.status, job.time_slot_start) == ("scheduled", job.time_slot_end)


@pytest.mark.parametrize(
    ("seq", "kind", "message"),
    [
        (3, "expired", "the next event must be 2, got 3"),
        (1, "expired", "duplicate key value|the next event must be 2"),
        (2, "completed", "cannot complete: it is scheduled"),
        (2, "failed", "cannot be failed: it is scheduled"),
        (2, "abandoned", "cannot be abandoned: it is scheduled"),
        (2, "retry", "cannot be retried: it is scheduled"),
        (2, "released", "cannot be released: it is scheduled"),
        (2, "scheduled", "must be its first event"),
        (2, "nonsense", "unknown event kind"),
        (2, "deleted", "cannot be deleted: it is scheduled"),
    ],
)
def test_events_that_do_not_follow_are_rejected_with_nothing_written(
    seq: int, kind: str, message: str
) -> None:
    job = schedule_job("1d", "tests.handlers.record")
    with pytest.raises(DatabaseError, match=message), transaction.atomic():
        sql(
            "INSERT INTO django_future_jobevent (job_id, seq, kind) VALUES (%s, %s, %s)",
            [job.pk, seq, kind],
        )
    assert kinds(job) == ["scheduled"]


def test_events_for_a_job_that_does_not_exist_are_rejected() -> None:
    with pytest.raises(ProgrammingError, match="no live job 999999"), transaction.atomic():
        sql("INSERT INTO django_future_jobevent (job_id, seq, kind) VALUES (999999, 2, 'expired')")


def test_append_reports_a_gone_job() -> None:
    with pytest.raises(JobGoneError, match="job 123456 has no live row"):
        ledger.append(123456, EventKind.EXPIRED)


def test_events_outlive_deleted_jobs() -> None:
    job = schedule_job("0s", "tests.handlers.record", args=[1])
    run_jobs(delete_completed=True)
    assert not ScheduledJob.objects.filter(pk=job.pk).exists()
    assert kinds(job) == ["scheduled", "started", "completed", "deleted"]
    with pytest.raises(ProgrammingError, match="no live job"), transaction.atomic():
        sql(
            "INSERT INTO django_future_jobevent (job_id, seq, kind) VALUES (%s, 5, 'started')",
            [job.pk],
        )


def test_event_times_are_the_database_clock_and_in_order() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    run_jobs()
    ats = list(JobEvent.objects.filter(job_id=job.pk).order_by("seq").values_list("at", flat=True))
    assert ats == sorted(ats)
    job = ScheduledJob.objects.get(pk=job.pk)
    assert job.execution_start == ats[1] and job.execution_end == ats[2]


def test_verify_finds_a_tampered_projection_and_rebuild_repairs_it() -> None:
    done = schedule_job("0s", "tests.handlers.record", args=[1])
    waiting = schedule_job("1d", "tests.handlers.record")
    deleted = schedule_job("0s", "tests.handlers.record")
    run_jobs(delete_completed=False)
    ledger.append(deleted.pk, EventKind.DELETED)
    assert ledger.verify() == []

    with pgtrigger.ignore(PROJECTION_GUARD):
        sql(
            "UPDATE django_future_scheduledjob SET status = 'failed', error = 'forged' WHERE id = %s",
            [done.pk],
        )
        sql("DELETE FROM django_future_scheduledjob WHERE id = %s", [waiting.pk])
        sql(
            "INSERT INTO django_future_scheduledjob (id, callable_name, args, kwargs, time_slot_start,"
            " status, created_at, last_seq, atomic, max_attempts, attempts, last_hash,"
            " queue, priority)"
            " VALUES (%s, 'x.y', '[]', '{}', now(), 'scheduled', now(), 1, false, 1, 0, '',"
            " 'default', 0)",
            [deleted.pk],
        )
    differences = {d.job_id: d for d in ledger.verify()}
    assert set(differences) == {done.pk, waiting.pk, deleted.pk}
    assert differences[done.pk].fields == ["error", "status"]
    assert "row=" in str(differences[done.pk]) and "'forged'" in str(differences[done.pk])
    assert "row missing" in str(differences[waiting.pk])
    assert "deleted or never existed" in str(differences[deleted.pk])

    assert ledger.rebuild() == 3
    assert ledger.verify() == []
    assert ScheduledJob.objects.get(pk=done.pk).status == "complete"
    assert ScheduledJob.objects.get(pk=waiting.pk).status == "scheduled"
    assert not ScheduledJob.objects.filter(pk=deleted.pk).exists()
    assert ledger.rebuild() == 0


def test_rebuild_from_nothing_restores_every_field() -> None:
    schedule_job("0s", "tests.handlers.record", args=[1], kwargs={"a": 2})
    schedule_job("0s", "tests.handlers.boom")
    schedule_job("1d", "tests.handlers.record", expires=None)
    run_jobs(ignore_errors=True)
    before = list(ScheduledJob.objects.order_by("pk").values())
    with pgtrigger.ignore(PROJECTION_GUARD):
        sql("DELETE FROM django_future_scheduledjob")
    assert ledger.rebuild() == 3
    assert list(ScheduledJob.objects.order_by("pk").values()) == before


def test_hash_chain_links_each_event_to_the_previous_one() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    run_jobs()
    events = list(JobEvent.objects.filter(job_id=job.pk).order_by("seq"))
    assert all(len(e.hash) == 64 for e in events)
    assert len({e.hash for e in events}) == len(events)
    assert ScheduledJob.objects.get(pk=job.pk).last_hash == events[-1].hash
    (expected,) = sql(
        "SELECT django_future_event_hash(%s, job_id, seq, kind, at, runner, data)"
        " FROM django_future_jobevent WHERE job_id = %s AND seq = 2",
        [events[0].hash, job.pk],
    )[0]
    assert expected == events[1].hash


def test_hash_cannot_be_forged_by_the_writer() -> None:
    job = schedule_job("1d", "tests.handlers.record")
    with (
        pytest.raises(ProgrammingError, match="does not chain to the job's previous event"),
        transaction.atomic(),
    ):
        sql(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, hash)"
            " VALUES (%s, 2, 'expired', 'forged')",
            [job.pk],
        )
    assert kinds(job) == ["scheduled"]


def test_a_writer_that_brings_its_own_hash_must_chain_it_and_use_the_statement_time() -> None:
    """What the set-based writers (bulk scheduling, batched claims) do: the statement
    trigger accepts their hashes only if they are what the database would have set."""
    job = schedule_job("1d", "tests.handlers.record")
    own_hash = (
        "INSERT INTO django_future_jobevent (job_id, seq, kind, at, data, hash)"
        " SELECT id, 2, 'expired', {at}, '{{}}',"
        "        django_future_event_hash(last_hash, id, 2, 'expired', {at}, NULL, '{{}}')"
        " FROM django_future_scheduledjob WHERE id = %s"
    )
    backdated = "statement_timestamp() - interval '1 day'"
    with pytest.raises(ProgrammingError, match="not stamped with the time"), transaction.atomic():
        sql(own_hash.format(at=backdated), [job.pk])
    sql(own_hash.format(at="statement_timestamp()"), [job.pk])
    assert kinds(job) == ["scheduled", "expired"]
    assert ScheduledJob.objects.get(pk=job.pk).status == "expired"


def test_verify_detects_history_edited_with_the_triggers_disabled() -> None:
    """What a table owner or superuser can do: switch the triggers off and rewrite."""
    edited = schedule_job("0s", "tests.handlers.boom", args=["real reason"])
    cut = schedule_job("0s", "tests.handlers.record")
    schedule_job("0s", "tests.handlers.record")  # untouched: must not be reported
    run_jobs(ignore_errors=True)
    assert ledger.verify() == []

    with transaction.atomic():  # rolled back below: the after-test check needs it intact
        sql("ALTER TABLE django_future_jobevent DISABLE TRIGGER USER")
        sql(
            'UPDATE django_future_jobevent SET data = data || \'{"error": "nothing to see"}\''
            " WHERE job_id = %s AND kind = 'failed'",
            [edited.pk],
        )
        sql("DELETE FROM django_future_jobevent WHERE job_id = %s AND seq = 2", [cut.pk])
        sql("ALTER TABLE django_future_jobevent ENABLE TRIGGER USER")

        problems = ledger.verify()
        chain = [str(p) for p in problems if isinstance(p, ledger.BrokenChain)]
        assert chain == [
            f"job {edited.pk}: event 3 (failed): its hash does not match its contents and the "
            "previous event: it was changed",
            f"job {cut.pk}: event 3 (completed): events 2 to 2 are missing",
        ]
        # The projection check sees them too: the fold of what is left differs from the rows.
        differing = {p.job_id: str(p) for p in problems if isinstance(p, ledger.Difference)}
        assert set(differing) == {edited.pk, cut.pk}
        assert "error: row='" in differing[edited.pk] and "nothing to see" in differing[edited.pk]
        assert "cannot be folded: django_future: job" in differing[cut.pk]
        assert "the next event must be 2, got 3" in differing[cut.pk]
        transaction.set_rollback(True)


def test_one_statement_may_carry_several_events_of_several_jobs() -> None:
    """The statement-level fold: jobs are folded together, a job's own events in turn."""
    first = schedule_job("0s", "tests.handlers.record")
    second = schedule_job("1d", "tests.handlers.record")
    sql(
        "INSERT INTO django_future_jobevent (job_id, seq, kind, runner, data) VALUES"
        " (%(a)s, 2, 'started', 'by hand', '{}'),"
        " (%(a)s, 3, 'completed', 'by hand', '{\"return_value\": \"ok\"}'),"
        " (%(a)s, 4, 'deleted', 'by hand', '{}'),"
        " (%(b)s, 2, 'cancelled', 'by hand', '{}')",
        {"a": first.pk, "b": second.pk},
    )
    assert kinds(first) == ["scheduled", "started", "completed", "deleted"]
    assert not ScheduledJob.objects.filter(pk=first.pk).exists()
    assert ScheduledJob.objects.get(pk=second.pk).status == "cancelled"
    assert ledger.verify() == []


def test_a_bad_event_anywhere_in_a_statement_writes_nothing() -> None:
    good = schedule_job("1d", "tests.handlers.record")
    bad = schedule_job("1d", "tests.handlers.record")
    with pytest.raises(ProgrammingError, match="cannot complete"), transaction.atomic():
        sql(
            "INSERT INTO django_future_jobevent (job_id, seq, kind) VALUES"
            " (%s, 2, 'cancelled'), (%s, 2, 'completed')",
            [good.pk, bad.pk],
        )
    assert kinds(good) == ["scheduled"] and kinds(bad) == ["scheduled"]
    assert ScheduledJob.objects.get(pk=good.pk).status == "scheduled"


@pytest.mark.parametrize("batch", [1, 3])
def test_writers_that_fold_their_own_events_leave_the_guards_standing(batch: int) -> None:
    """The runner's claim and completion append and fold in one statement (claim.sql,
    complete.sql).
    The setting that tells the triggers to stand aside is cleared before they
    return: later statements of the same transaction meet the fold and the guard."""
    due = [schedule_job("0s", "tests.handlers.record") for _ in range(batch)]
    later = schedule_job("1d", "tests.handlers.record")
    with transaction.atomic():
        claimed = sql(
            "SELECT id, last_seq, status"
            " FROM django_future_claim(NULL, 'test', 1, %s, 'started', NULL, NULL, NULL)",
            [batch],
        )
        assert claimed == [(job.pk, 2, "running") for job in due]
        done = sql(
            "SELECT * FROM django_future_complete(%s, %s, %s, %s, %s::jsonb[], 'test')",
            [[j.pk for j in due], [2] * batch, ["x"] * batch, [0.5] * batch, [None] * batch],
        )
        assert sorted(row[0] for row in done) == [job.pk for job in due]
        assert sql("SELECT current_setting('django_future.folded', true)") == [("",)]
        sql(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, data) "
            "VALUES (%s, 2, 'expired', '{}')",
            [later.pk],
        )
        assert ScheduledJob.objects.get(pk=later.pk).status == "expired"
        with (
            pytest.raises(ProgrammingError, match="jobs change only by appending"),
            transaction.atomic(),
        ):
            sql("UPDATE django_future_scheduledjob SET status = 'scheduled'")
    for job in due:
        assert kinds(job) == ["scheduled", "started", "completed"]
        row = ScheduledJob.objects.get(pk=job.pk)
        assert (row.status, row.return_value, row.attempts) == ("complete", "x", 1)
    assert ledger.verify() == []


def test_a_writer_that_folds_its_own_events_fails_whole() -> None:
    """A writer that fails after it set the setting takes the setting back with its
    savepoint: the triggers are in force again for the rest of the transaction."""
    job = schedule_job("0s", "tests.handlers.record")
    with transaction.atomic():
        with pytest.raises(DatabaseError, match="LIMIT must not be negative"), transaction.atomic():
            # how_many = -1 fails in the batch statement, after the setting was set
            sql(
                "SELECT * FROM django_future_claim(NULL, 'test', 1, -1, 'started', NULL, NULL, NULL)"
            )
        assert sql("SELECT current_setting('django_future.folded', true)") in ([("",)], [(None,)])
        with (
            pytest.raises(ProgrammingError, match="jobs change only by appending"),
            transaction.atomic(),
        ):
            sql("UPDATE django_future_scheduledjob SET status = 'complete'")
    assert kinds(job) == ["scheduled"]
    assert ledger.verify() == []
