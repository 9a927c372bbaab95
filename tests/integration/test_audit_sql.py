"""Every SQL query in the README runs, against a real history, and answers its question."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import connection

from django_future import ledger, run_jobs, schedule_job

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"
QUERIES = re.findall(r"```sql\n(.*?)```", README.read_text(), re.DOTALL)


def fetch(sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [c.name for c in cursor.description], cursor.fetchall()


@pytest.fixture
def history() -> dict[str, int]:
    ok = schedule_job("0s", "tests.handlers.record", args=[1])
    bad = schedule_job("0s", "tests.handlers.boom", args=["card declined"])
    gone = schedule_job("0s", "tests.handlers.returns_number")
    run_jobs(ignore_errors=True, delete_completed=False)
    ledger.append(gone.pk, "deleted", {"reason": "test"})
    return {"ok": ok.pk, "bad": bad.pk, "gone": gone.pk}


def test_the_readme_documents_the_queries() -> None:
    assert len(QUERIES) == 6


def test_what_happened_to_a_job(history: dict[str, int]) -> None:
    cols, rows = fetch(QUERIES[0].replace("42", str(history["bad"])))
    assert cols == ["seq", "kind", "at", "runner", "exception"]
    assert [(r[0], r[1]) for r in rows] == [(1, "scheduled"), (2, "started"), (3, "failed")]
    assert rows[2][3] == ledger.runner_identity()
    assert rows[2][4] == "ValueError: card declined"


def test_history_survives_deletion(history: dict[str, int]) -> None:
    _, rows = fetch(QUERIES[0].replace("42", str(history["gone"])))
    assert [r[1] for r in rows] == ["scheduled", "started", "completed", "deleted"]


def test_failures_of_the_last_day(history: dict[str, int]) -> None:
    _, rows = fetch(QUERIES[1])
    assert [(r[0], r[1], r[4]) for r in rows] == [
        (history["bad"], "tests.handlers.boom", "ValueError: card declined")
    ]


def test_traceback_of_a_failure(history: dict[str, int]) -> None:
    _, rows = fetch(QUERIES[2].replace("42", str(history["bad"])))
    (error,) = rows[0]
    assert str(error).startswith("Traceback (most recent call last)")


def test_what_each_runner_did(history: dict[str, int]) -> None:
    _, rows = fetch(QUERIES[3])
    counts = {(r[0], r[1]): r[2] for r in rows}
    me = ledger.runner_identity()
    assert counts == {(me, "started"): 3, (me, "completed"): 2, (me, "failed"): 1}


def test_wait_and_run_times_per_callable(history: dict[str, int]) -> None:
    cols, rows = fetch(QUERIES[4])
    assert cols == ["callable_name", "runs", "avg_wait", "avg_run"]
    assert {r[0]: r[1] for r in rows} == {
        "tests.handlers.record": 1,
        "tests.handlers.boom": 1,
        "tests.handlers.returns_number": 1,
    }
    assert all(r[2].total_seconds() >= 0 and r[3].total_seconds() >= 0 for r in rows)


def test_no_job_started_twice(history: dict[str, int]) -> None:
    _, rows = fetch(QUERIES[5])
    assert rows == []


def test_a_time_window_is_served_by_the_ledgers_time_index(history: dict[str, int]) -> None:
    """The ledger's events of the last day are found through its BRIN index on
    ``at``, which a large ledger's planner prefers. This ledger is tiny, so
    sequential scans are priced out for the plan."""
    window = (
        "SELECT job_id, kind FROM django_future_jobevent "
        "WHERE at > statement_timestamp() - interval '1 day'"
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + window)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(window + " ORDER BY id")
        events = cursor.fetchall()
    assert "Bitmap Index Scan on django_future_event_at" in plan, plan
    assert (history["gone"], "deleted") in events
    assert len(events) == 10  # three jobs' scheduled, started, outcome; one deletion
