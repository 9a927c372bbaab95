"""The claim stays an index scan of live work, however long the ledger grows, and the
runner's writers stay set-based: what they cost does not grow with the ledger or, per job,
with the batch.

These tests observe what the database did (EXPLAIN of the one due selection, and this
transaction's scan and call counters) rather than how the functions' sources read, so that
a rewording of the SQL or a new PostgreSQL version's plans do not break them while the
promises hold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.db import DatabaseError, connection, transaction

from django_future.scheduler import schedule_job, schedule_jobs
from django_future.sql import query
from tests.support import db_now

pytestmark = pytest.mark.django_db

HISTORY = 5_000  # finished jobs: three events each in the ledger
DUE = 5  # due jobs among them


def bulk_history(n: int) -> None:
    """n finished jobs and DUE due ones, written straight into the ledger."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, data) "
            "SELECT nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1,"
            " 'scheduled', jsonb_build_object('callable_name', 'tests.handlers.record',"
            " 'time_slot_start', now() - interval '1 day') FROM generate_series(1, %s)",
            [n],
        )
        for kind in ("started", "completed"):
            cursor.execute(
                "INSERT INTO django_future_jobevent (job_id, seq, kind, data) "
                "SELECT id, last_seq + 1, %s, '{}' FROM django_future_scheduledjob ORDER BY id",
                [kind],
            )
        cursor.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, data) "
            "SELECT nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1,"
            " 'scheduled', jsonb_build_object('callable_name', 'tests.handlers.record',"
            " 'time_slot_start', now()) FROM generate_series(1, %s)",
            [DUE],
        )
        cursor.execute("ANALYZE django_future_scheduledjob")
        cursor.execute("ANALYZE django_future_jobevent")


def plan(sql: str, params: dict[str, object] | list[object]) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def scans() -> tuple[int, int]:
    """This transaction's scans so far: sequential scans of the job table, and scans of
    the partial indexes of live (scheduled) work."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_stat_get_xact_numscans('django_future_scheduledjob'::regclass),"
            " pg_stat_get_xact_numscans('django_future_claimable'::regclass)"
            " + pg_stat_get_xact_numscans('django_future_expirable'::regclass)"
        )
        seq, live = cursor.fetchone()
    return seq, live


def assert_one_ordered_index_scan(text: str) -> None:
    """The plan reads the job table through the claimable index, in its order: no
    sequential scan of it, no sort. (The locks' and limits' tables, a handful of rows,
    may be read whole, once per claim: see claim.sql.)"""
    assert "Index Scan using django_future_claimable" in text, text
    assert "Seq Scan on django_future_scheduledjob" not in text, text
    assert "Sort" not in text, text


def test_the_due_selection_is_one_ordered_scan_of_the_claimable_index() -> None:
    """django_future_due (claim.sql), the one definition of which jobs are due and in what
    order, which every claim calls, takes the oldest due job from the partial index of
    live work, in its order: no sequential scan of the job table, no sort."""
    bulk_history(HISTORY)
    text = plan(
        "SELECT * FROM django_future_due("
        "statement_timestamp(), statement_timestamp(), 1, NULL, NULL)",
        [],
    )
    assert_one_ordered_index_scan(text)


@pytest.mark.parametrize("locks_in_use", [False, True])
def test_the_generic_plan_of_the_due_selection_is_one_ordered_index_scan(
    locks_in_use: bool,
) -> None:
    """The claim functions keep a generic plan (plan_cache_mode, claim.sql), made without
    the parameters' values: the locks' and limits' filters must not lead its estimates to
    a bitmap scan of every live job and a sort (claim.sql says how that happened)."""
    with connection.cursor() as cursor:
        # Many live jobs, all due, in one queue (as bench/compare.py loads them).
        cursor.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, data) "
            "SELECT nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1,"
            " 'scheduled', jsonb_build_object('callable_name', 'tests.handlers.record',"
            " 'time_slot_start', now() - interval '1 hour', 'time_slot_end', now() + interval"
            " '1 day') FROM generate_series(1, 5000)"
        )
        if locks_in_use:
            # Every job takes one of 64 locks, in a limited queue, as
            # bench/variants/locks_in_use.sql makes them: by rewriting the rows behind the
            # ledger's back (put back below), which also leaves the table as runners leave
            # it, a dead version behind each row and the index out of the table's order.
            cursor.execute("SET LOCAL django_future.folded = 'on'")
            cursor.execute(
                "UPDATE django_future_scheduledjob SET lock = 'lock-' || (id % 64),"
                " queue = 'limited'"
            )
            cursor.execute("INSERT INTO django_future_queuelimit VALUES ('limited', 4)")
        cursor.execute("ANALYZE")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(
            "PREPARE due_generic(timestamptz, timestamptz, integer, text[], text[], bigint[])"
            " AS SELECT * FROM django_future_due($1, $2, $3, $4, $5, $6)"
        )
        try:
            text = plan(
                "EXECUTE due_generic(statement_timestamp(), statement_timestamp(), 1,"
                " NULL, NULL, NULL)",
                [],
            )
        finally:
            cursor.execute("DEALLOCATE due_generic")
            if locks_in_use:
                cursor.execute(
                    "UPDATE django_future_scheduledjob SET lock = NULL, queue = 'default'"
                )
                cursor.execute("SET LOCAL django_future.folded = ''")
    assert "$1" in text or "Index Cond" in text, text  # a generic plan
    assert_one_ordered_index_scan(text)
    if locks_in_use:
        # The locks held are read from the running jobs only, through a partial index
        # of them (per job, or hashed once per claim: the planner's choice).
        assert "django_future_lock_held" in text or "django_future_in_hand" in text, text


@pytest.mark.parametrize(
    "claim",
    [
        "SELECT * FROM django_future_claim(NULL, 'test', 1, 1, 'started', NULL, NULL, NULL)",
        "SELECT * FROM django_future_claim(NULL, 'test', 1, 3, 'started', NULL, NULL, NULL)",
        "SELECT * FROM django_future_complete_and_claim("
        "'[]', NULL, 'test', 1, 1, NULL, NULL, NULL)",
        "SELECT * FROM django_future_complete_and_claim("
        "'[]', NULL, 'test', 1, 3, NULL, NULL, NULL)",
    ],
    ids=["claim", "claim-batch", "step", "step-batch"],
)
def test_claims_never_scan_the_job_table(claim: str) -> None:
    """Each way the runner claims, run for real over a long history, finds the due jobs
    through a partial index of live work and never scans the job table, so that what a
    claim costs does not grow with the ledger. (A batch over a handful of due jobs may
    take them all from django_future_expirable and sort them: as cheap, and as bounded.)
    """
    bulk_history(HISTORY)
    seq_before, live_before = scans()
    with connection.cursor() as cursor:
        cursor.execute(claim)
        assert cursor.fetchall()
    seq_after, live_after = scans()
    assert seq_after == seq_before
    assert live_after > live_before


def queues_and_priorities(future: int) -> None:
    """Live work in several queues and priorities: ``future`` jobs of the highest
    priority not due for a day (which the claim steps over inside the index), and due
    jobs of two queues at two priorities."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, data) "
            "SELECT nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1,"
            " 'scheduled', jsonb_build_object('callable_name', 'tests.handlers.record',"
            " 'queue', CASE WHEN i %% 2 = 0 THEN 'emails' ELSE 'reports' END, 'priority', 100,"
            " 'time_slot_start', now() + interval '1 day') FROM generate_series(1, %s) i",
            [future],
        )
        cursor.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, data) "
            "SELECT nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1,"
            " 'scheduled', jsonb_build_object('callable_name', 'tests.handlers.record',"
            " 'queue', q, 'priority', p, 'time_slot_start', now() - interval '1 hour')"
            " FROM unnest(ARRAY['emails', 'reports']) q, unnest(ARRAY[-5, 5]) p,"
            " generate_series(1, %s)",
            [DUE],
        )
        cursor.execute("ANALYZE django_future_scheduledjob")


@pytest.mark.parametrize(
    ("queues", "exclude"),
    [(None, None), (["emails"], None), (None, ["emails"]), (["emails", "reports"], ["x"])],
    ids=["all", "queue", "exclude", "both"],
)
def test_with_queues_and_priorities_the_due_selection_is_still_one_ordered_index_scan(
    queues: list[str] | None, exclude: list[str] | None
) -> None:
    """The claim's order (priority DESC, time_slot_start, id) is the claimable index's:
    with jobs of several queues and priorities, and higher-priority jobs not yet due,
    the due selection is one scan of that index, in its order, and no sort; and it
    takes the due job of the highest priority of the queues asked for."""
    bulk_history(HISTORY)
    queues_and_priorities(2_000)
    sql = (
        "SELECT * FROM django_future_due("
        "statement_timestamp(), statement_timestamp(), 1, %s::text[], %s::text[])"
    )
    text = plan(sql, [queues, exclude])
    assert_one_ordered_index_scan(text)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT queue, priority, time_slot_start <= now() FROM django_future_scheduledjob"
            f" WHERE id = ({sql})",
            [queues, exclude],
        )
        queue, priority, due = cursor.fetchone()
    assert (priority, due) == (5, True)
    assert queue == ("reports" if exclude == ["emails"] else queue)
    if queues == ["emails"]:
        assert queue == "emails"


@pytest.mark.parametrize(
    "claim",
    [
        "SELECT * FROM django_future_claim(NULL, 'test', 1, 1, 'started', NULL,"
        " ARRAY['emails'], NULL)",
        "SELECT * FROM django_future_complete_and_claim("
        "'[]', NULL, 'test', 1, 1, NULL, NULL, ARRAY['reports'])",
        "SELECT * FROM django_future_complete_and_claim("
        "'[]', NULL, 'test', 1, 3, NULL, ARRAY['reports'], NULL)",
    ],
    ids=["claim", "step", "step-batch"],
)
def test_claims_of_some_queues_never_scan_the_job_table(claim: str) -> None:
    bulk_history(HISTORY)
    queues_and_priorities(2_000)
    seq_before, live_before = scans()
    with connection.cursor() as cursor:
        cursor.execute(claim)
        rows = cursor.fetchall()
    assert rows
    seq_after, live_after = scans()
    assert seq_after == seq_before
    assert live_after > live_before


def test_expiry_and_next_due_use_the_partial_indexes() -> None:
    bulk_history(HISTORY)
    queues_and_priorities(2_000)
    assert "django_future_expirable" in plan(query("expire"), {"now": None, "runner": "x:1"})
    for queues in (None, ["emails"]):
        text = plan(query("next_due"), {"queues": queues, "exclude_queues": None})
        assert "django_future_claimable" in text, text
        assert "Seq Scan on django_future_scheduledjob" not in text, text


def test_next_due_is_the_earliest_job_of_the_queues_whatever_its_priority() -> None:
    """next_due finds each priority's earliest job through the index (a loose scan);
    the answer is the earliest of them, in the worker's queues only."""
    now = db_now()
    schedule_job(now + dt.timedelta(hours=3), "tests.handlers.record", priority=90)
    schedule_job(now + dt.timedelta(hours=1), "tests.handlers.record", priority=-90)
    schedule_job(now + dt.timedelta(hours=2), "tests.handlers.record", priority=0)
    schedule_job(now + dt.timedelta(minutes=5), "tests.handlers.record", queue="other")

    def next_due(queues: list[str] | None, exclude: list[str] | None) -> float | None:
        with connection.cursor() as cursor:
            cursor.execute(query("next_due"), {"queues": queues, "exclude_queues": exclude})
            (seconds,) = cursor.fetchone()
        return None if seconds is None else float(seconds)

    def hours(seconds: float | None) -> float:
        assert seconds is not None
        return round(seconds / 3600, 1)

    assert hours(next_due(None, None)) == 0.1
    assert hours(next_due(["default"], None)) == 1.0
    assert hours(next_due(None, ["other"])) == 1.0
    assert next_due(["nothing-here"], None) is None


Calls = Callable[[], dict[str, int]]


@pytest.fixture
def pl_calls() -> Calls:
    """How many PL/pgSQL functions of the package this transaction has called so far, by
    name (track_functions, which only a superuser may set)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL track_functions = 'pl'")
    except DatabaseError as exc:
        # Not skipped: these promises would go unchecked. dev.py's embedded server
        # connects as a superuser; with DATABASE_URL, use one too.
        pytest.fail(f"counting function calls needs a superuser (track_functions): {exc}")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL track_functions = 'pl'")

    def calls() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT p.proname, pg_stat_get_xact_function_calls(p.oid) FROM pg_proc p"
                " WHERE p.proname LIKE 'django\\_future\\_%%'"
                " AND pg_stat_get_xact_function_calls(p.oid) > 0"
            )
            return dict(cursor.fetchall())

    return calls


def difference(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: n - before.get(name, 0) for name, n in after.items() if n > before.get(name, 0)}


def due_jobs(n: int) -> list[int]:
    return [schedule_job("0s", "tests.handlers.record").pk for _ in range(n)]


def test_the_step_is_one_call_per_job(pl_calls: Calls) -> None:
    """The runner's one-job step, a completion and a claim, is one PL/pgSQL call that
    folds both events in its own statements: no call of the fold, or of anything else,
    per job (complete.sql)."""
    due_jobs(2)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, last_seq"
            " FROM django_future_complete_and_claim("
            "'[]', NULL, 'test', 1, 1, NULL, NULL, NULL)"
        )
        ((first, seq),) = cursor.fetchall()
        before = pl_calls()
        cursor.execute(
            "SELECT id, status FROM django_future_complete_and_claim("
            "%s::jsonb, NULL, 'test', 1, 1, NULL, NULL, NULL)",
            [f'[[{first}, {seq}, "x", 0.5]]'],
        )
        ((second, status),) = cursor.fetchall()
    assert second != first and status == "running"
    assert difference(before, pl_calls()) == {"django_future_complete_and_claim": 1}


@pytest.mark.parametrize(
    "write",
    ["claim", "complete", "schedule"],
)
def test_batches_cost_the_same_calls_whatever_their_size(pl_calls: Calls, write: str) -> None:
    """A batch's start (claim.sql), its completions (complete.sql) and bulk scheduling
    (bulk.sql) each fold their events in set-based statements: the PL/pgSQL calls they
    make do not grow with the batch, and none is the fold."""

    def run(n: int) -> dict[str, int]:
        if write == "schedule":
            before = pl_calls()
            schedule_jobs([{"date": "0s", "callable_name": "tests.handlers.record"}] * n)
            return difference(before, pl_calls())
        ids = due_jobs(n)
        with connection.cursor() as cursor:
            before = pl_calls()
            cursor.execute(
                "SELECT id, last_seq"
                " FROM django_future_claim(NULL, 'test', %s, %s, 'started', NULL, NULL, NULL)",
                [n, n],  # a runner of its own, which holds only these
            )
            started = dict(cursor.fetchall())
            assert sorted(started) == ids
            if write == "complete":
                before = pl_calls()
                cursor.execute(
                    "SELECT * FROM django_future_complete(%s, %s, %s, %s, %s::jsonb[], 'test')",
                    [ids, [started[i] for i in ids], ["x"] * n, [0.5] * n, [None] * n],
                )
                assert len(cursor.fetchall()) == n
        return difference(before, pl_calls())

    small, large = run(2), run(40)
    assert small == large, (small, large)
    assert "django_future_fold" not in large, large
