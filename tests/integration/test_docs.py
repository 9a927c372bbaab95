"""Every SQL query in docs/audit.md runs against a real history and returns what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db import connection

from django_future import ledger, run_jobs, schedule_job
from django_future.models import JobEvent
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.DOTALL)
# Queries whose answer may rightly be empty in this history.
MAY_BE_EMPTY = ("status = 'running'", "IN ('running', 'claimed')", "django_future_prunerecord")


@pytest.fixture
def history() -> dict[str, str]:
    order = Order.objects.create(number="D-1")
    bound = schedule_job("0s", "remind", content_object=order)
    flaky = schedule_job("0s", "tests.handlers.fails_until", args=[2], retries=1, retry_delay="1s")
    schedule_job("0s", "tests.handlers.boom", args=["card declined"])
    run_jobs(ignore_errors=True)
    instant = JobEvent.objects.filter(job_id=flaky.pk, kind="started").get().at
    run_jobs(ignore_errors=True, now=instant.replace(year=instant.year + 1))
    schedule_job("1h", "tests.handlers.record")
    return {
        "job": str(flaky.pk),
        "object": str(order.pk),
        "runner": ledger.runner_identity(),
        "instant": instant.isoformat(),
        "bound": str(bound.pk),
    }


def test_the_doc_has_its_queries() -> None:
    assert len(QUERIES) >= 15


@pytest.mark.parametrize("number", range(len(QUERIES)))
def test_documented_query_runs(history: dict[str, str], number: int) -> None:
    sql = QUERIES[number]
    sql = re.sub(r"\b42\b", history["job"], sql)
    sql = sql.replace(f"object_id = '{history['job']}'", f"object_id = '{history['object']}'")
    sql = sql.replace("worker-1:4242", history["runner"])
    sql = sql.replace("2026-11-26 03:12:00+00", history["instant"])
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    if not any(marker in sql for marker in MAY_BE_EMPTY):
        assert rows, f"no rows from:\n{sql}"
    if "AS intact" in sql:
        assert all(intact for _seq, intact in rows)
    if "django_future_jobs_as_of" in sql and "GROUP BY status" in sql:
        assert ("running", 1) in rows
