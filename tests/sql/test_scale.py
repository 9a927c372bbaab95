"""The claim stays an index scan of live work, however long the ledger grows."""

from __future__ import annotations

import re

import pytest
from django.db import connection

from django_future.sql import query

pytestmark = pytest.mark.django_db

HISTORY = 5_000  # finished jobs: three events each in the ledger


def bulk_history(n: int) -> None:
    """n finished jobs and a handful of due ones, written straight into the ledger."""
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
            " 'time_slot_start', now()) FROM generate_series(1, 5)"
        )
        cursor.execute("ANALYZE django_future_scheduledjob")
        cursor.execute("ANALYZE django_future_jobevent")


def plan(sql: str, params: dict[str, object]) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def claim_selections() -> list[str]:
    """The claim's selections of due jobs, as the database holds them (EXPLAIN of a
    function call does not show the plans inside it): one job and a batch in
    django_future_start_due, and the runner's one-job step (complete.sql)."""

    def source(function: str) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [function])
            (text,) = cursor.fetchone()
        return text

    due = source("django_future_start_due")
    one = re.search(r"SELECT \* INTO cur\n(.*?FOR UPDATE SKIP LOCKED);", due, re.DOTALL)
    batch = re.search(r"WITH due AS \((.*?)\n        \),", due, re.DOTALL)
    step_source = source("django_future_complete_and_claim")
    step = re.search(
        r"WHERE j.id = \(\n(\s*SELECT d.id.*?FOR UPDATE SKIP LOCKED)\)", step_source, re.DOTALL
    )
    assert one and batch, due
    assert step, step_source
    return [
        selection.replace("cutoff", "statement_timestamp()")
        .replace("due_at", "statement_timestamp()")
        .replace("how_many", "1")
        for selection in ("SELECT * " + one.group(1), batch.group(1), step.group(1))
    ]


def test_claim_expiry_and_next_due_use_the_partial_indexes() -> None:
    bulk_history(HISTORY)
    for selection in claim_selections():
        text = plan(selection, {})
        assert "django_future_claimable" in text, text
        assert "Seq Scan on django_future_scheduledjob" not in text, text
    assert "django_future_expirable" in plan(query("expire"), {"now": None, "runner": "x:1"})
    assert "django_future_claimable" in plan(query("next_due"), {})


def step_statements() -> dict[str, str]:
    """The runner's one-job step as its two statements (record the completion; start the
    next job), taken from the function's source with its variables made literals."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = 'django_future_complete_and_claim'"
        )
        (source,) = cursor.fetchone()
    completion = re.search(r"(WITH completed AS \(.*?FROM completed c);", source, re.DOTALL)
    start = re.search(r"(WITH started AS \(.*?SELECT \* FROM started);", source, re.DOTALL)
    assert completion and start, source
    literals = {
        "finished": "'[1, 1, null, 0.5]'::jsonb",
        "payload": "'{\"runner_id\": 1}'::jsonb",
        "runner_name": "'host:1'",
        "runner_pk": "1::bigint",
        "cutoff": "statement_timestamp()",
        "due_at": "statement_timestamp()",
    }
    statements = {"completion": completion.group(1), "start": start.group(1)}
    for name, text in statements.items():
        for variable, literal in literals.items():
            text = re.sub(rf"\b{variable}\b", literal, text)
        statements[name] = text
    return statements


@pytest.mark.parametrize("statement", ["completion", "start"])
def test_the_step_computes_its_rows_in_line(statement: str) -> None:
    """The one-job step's UPDATE computes the new row and the event's hash as plain
    expressions in its own plan (complete.sql): a PL/pgSQL fold or a SQL function the planner
    cannot inline would cost a call, set up again for every job."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN VERBOSE " + step_statements()[statement])
        text = "\n".join(row[0] for row in cursor.fetchall())
    assert "sha256(" in text, text  # the hash, written into the plan
    for function in (
        "django_future_fold",
        "django_future_event_hash",
        "django_future_started",
        "django_future_completed",
    ):
        assert function not in text, text


def test_bulk_scheduling_creates_its_rows_in_line() -> None:
    """schedule_jobs' statement (bulk.sql) computes each job's first row and its event's
    hash as plain expressions in its own plan, as the step does: no PL/pgSQL fold or
    SQL function call per job."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'django_future_schedule_lines'")
        (source,) = cursor.fetchone()
    found = re.search(r"(WITH given AS MATERIALIZED \(.*?);", source, re.DOTALL)
    assert found, source
    statement = (
        found.group(1)
        .replace(" INTO ids", "")
        .replace("job_ids", "pg_get_serial_sequence('django_future_scheduledjob', 'id')::regclass")
        .replace("lines,", '\'{"callable_name": "tests.handlers.record"}\',')
    )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN VERBOSE " + statement)
        text = "\n".join(row[0] for row in cursor.fetchall())
    assert "sha256(" in text and "time_slot_start" in text, text
    for function in ("django_future_fold", "django_future_event_hash", "django_future_scheduled("):
        assert function not in text, text


@pytest.mark.parametrize(
    ("function", "statement"),
    [
        ("django_future_start_due", r"(WITH due AS \(.*?WHERE j.id = \(due.job\).id);"),
        ("django_future_complete", r"(WITH mine AS \(.*?RETURNING j.id);"),
    ],
)
def test_batches_compute_their_rows_in_line(function: str, statement: str) -> None:
    """A batch's start and its completions (claim.sql, complete.sql) compute the new rows as plain
    expressions, as the one-job step does: no PL/pgSQL fold per job."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [function])
        (source,) = cursor.fetchone()
    found = re.search(statement, source, re.DOTALL)
    assert found, source
    text = found.group(1)
    text = text.replace(
        "unnest(ids, seqs, return_values, seconds)",
        "unnest('{1,2}'::bigint[], '{2,2}'::integer[], '{a,b}'::text[], '{0.1,0.2}'::float8[])",
    )
    literals = {"runner_name": "'host:1'"}  # the completions' payload is a column of mine
    if function == "django_future_start_due":
        literals.update(
            cutoff="statement_timestamp()",
            due_at="statement_timestamp()",
            how_many="50",
            event_kind="'started'",
            runner_pk="1::bigint",
            payload="'{\"runner_id\": 1}'::jsonb",
        )
    for variable, literal in literals.items():
        text = re.sub(rf"(?<![.\w']){variable}\b", literal, text)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN VERBOSE " + text)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "sha256(" in plan, plan
    for name in ("django_future_fold", "django_future_started", "django_future_completed"):
        assert name not in plan, plan
