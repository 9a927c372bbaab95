"""Every SQL block in README.md and docs/*.md, run against a known history, row for row.

The naming convention: each fenced ``sql`` block in README.md or docs/*.md has, on the line
right before its opening fence, an HTML comment that names it (invisible once rendered)::

    <!-- sql: started-twice -->
    ```sql
    SELECT ...
    ```

Names are lowercase words joined by hyphens, unique across all the files. Tests refer to a
block by its name, never by its position in a file. ``CHECKS`` maps each name to a function
that runs the block against the history built by ``history`` and asserts the rows it returns.
``test_every_documented_block_has_a_name_and_a_check`` fails on a block with no name, a
duplicate name, a name with no check, or a check whose block is gone, so a query added to the
docs cannot go untested.

The history holds what an auditor asks about: completed jobs (one bound to an order), a failed
job, a job that fails then succeeds on its retry, a cancelled job, an expired job, a job
recovered from a runner whose lease ran out, a job whose row was deleted with ``-d``, a pruned
job, a job not due yet and a job running in a live runner's hands. Documented placeholders
(job ``42``, order ``'42'`` of ``'shop.order'``, runner ``'worker-1:4242'``, the instant
``2026-11-26 03:12:00+00``) are replaced by this history's values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from django_future import audit, ledger, run_jobs, schedule_job
from django_future.models import JobEvent, ScheduledJob
from django_future.runner import Runner
from tests import handlers
from tests.support import audit_role, db_now
from tests.testapp.models import Order

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```sql\n(.*?)^```$", re.MULTILINE | re.DOTALL)
NAME = re.compile(r"<!-- sql: ([a-z0-9]+(?:-[a-z0-9]+)*) -->\n\Z")


def documented_blocks() -> tuple[dict[str, str], list[str]]:
    """(name -> SQL, problems): every sql block of the docs, by the name before its fence."""
    blocks: dict[str, str] = {}
    problems: list[str] = []
    for path in DOCS:
        text = path.read_text()
        for fence in FENCE.finditer(text):
            line = text.count("\n", 0, fence.start()) + 1
            before = text[: fence.start()]
            name = NAME.search(before[before.rfind("\n", 0, len(before) - 1) + 1 :])
            where = f"{path.relative_to(ROOT)}:{line}"
            if name is None:
                problems.append(f"{where}: sql block without a '<!-- sql: NAME -->' line")
            elif name.group(1) in blocks:
                problems.append(f"{where}: the name {name.group(1)!r} is used twice")
            else:
                blocks[name.group(1)] = fence.group(1)
    return blocks, problems


BLOCKS, NAMING_PROBLEMS = documented_blocks()


@dataclass(frozen=True)
class History:
    me: str  # host:pid, the runners of this test process
    order: Order
    bound: int  # bound to the order, completed
    ok: int  # completed
    bad: int  # failed, no retries
    flaky: int  # failed, retried, completed
    cancelled: int
    late: int  # expired
    recovered: int  # started by ghost:1, whose lease ran out; abandoned, retried, completed
    gone: int  # completed, then its row deleted (-d)
    future: int  # due in an hour
    live: int  # running, in the hands of alive:1 whose lease holds
    pruned: int  # completed, then pruned
    pruned_digest: str
    instant: dt.datetime  # when the recovered job was running and nothing had run yet


def _in_the_hands_of(job: ScheduledJob, name: str, lease: dt.timedelta) -> None:
    """Register a runner called ``name`` as a runner registers itself, and append the
    ``started`` event its claim would have appended (through the fold, as any writer)."""
    runner = Runner(identity=name, lease=lease)
    runner._register()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, runner, data) "
            "VALUES (%s, 2, 'started', %s, jsonb_build_object('runner_id', %s::bigint))",
            [job.pk, name, runner.runner_id],
        )


@pytest.fixture
def history() -> History:
    # A job run and then pruned: only its prune record remains.
    pruned = schedule_job("0s", "tests.handlers.record", args=["old"])
    run_jobs()
    head = ScheduledJob.objects.get(pk=pruned.pk).last_hash
    assert audit.prune(dt.timedelta(0), by="retention check").jobs == 1

    order = Order.objects.create(number="D-1")
    bound = schedule_job("0s", "tests.handlers.touch_order", content_object=order)
    ok = schedule_job("0s", "tests.handlers.record", args=[1])
    bad = schedule_job("0s", "tests.handlers.boom", args=["card declined"])
    flaky = schedule_job("0s", "tests.handlers.fails_until", args=[2], retries=1, retry_delay="1s")
    cancelled = schedule_job("1h", "tests.handlers.record", args=["gift"])
    cancelled.cancel(by="ops@example.com", reason="customer asked for no reminders")
    late = schedule_job(dt.timedelta(minutes=-30), "tests.handlers.record", expires="10m")
    recovered = schedule_job("0s", "tests.handlers.record", retries=1, retry_delay="1s")
    _in_the_hands_of(recovered, "ghost:1", dt.timedelta(microseconds=1))
    instant = JobEvent.objects.get(job_id=recovered.pk, kind="started").at

    run_jobs(ignore_errors=True)  # recovers, expires, completes, fails, schedules retries
    run_jobs(ignore_errors=True, now=db_now() + dt.timedelta(hours=1))  # the retries
    gone = schedule_job("0s", "tests.handlers.returns_number")
    run_jobs(delete_completed=True)
    future = schedule_job("1h", "tests.handlers.record", args=["later"])
    live = schedule_job("0s", "tests.handlers.record", args=["in hand"])
    _in_the_hands_of(live, "alive:1", dt.timedelta(hours=1))

    return History(
        me=ledger.runner_identity(),
        order=order,
        bound=bound.pk,
        ok=ok.pk,
        bad=bad.pk,
        flaky=flaky.pk,
        cancelled=cancelled.pk,
        late=late.pk,
        recovered=recovered.pk,
        gone=gone.pk,
        future=future.pk,
        live=live.pk,
        pruned=pruned.pk,
        pruned_digest=hashlib.sha256(f"{pruned.pk}:{head}\n".encode()).hexdigest(),
        instant=instant,
    )


def _cursor() -> Any:
    """Where ``run`` sends a block: Django's connection, or (the audit role's test) another."""
    return connection.cursor()


def run(
    name: str,
    *,
    job: int | None = None,
    runner: str | None = None,
    obj: Order | None = None,
    instant: dt.datetime | None = None,
) -> list[tuple[Any, ...]]:
    """Run the documented block ``name`` with its placeholders replaced; its rows."""
    sql = BLOCKS[name]
    replacements = []
    if job is not None:
        replacements.append((r"job_id = 42\b", f"job_id = {job}"))
    if obj is not None:
        replacements.append((r"content_type = 'shop\.order'", "content_type = 'testapp.order'"))
        replacements.append((r"object_id = '42'", f"object_id = '{obj.pk}'"))
    if runner is not None:
        replacements.append((r"'worker-1:4242'", f"'{runner}'"))
    if instant is not None:
        replacements.append((r"'2026-11-26 03:12:00\+00'", f"'{instant.isoformat()}'"))
    for pattern, value in replacements:
        sql, found = re.subn(pattern, value, sql)
        assert found, f"block {name!r} has no placeholder {pattern!r}"
    with _cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


# --- the README ----------------------------------------------------------------------------

FAILED_ON_PURPOSE = "RuntimeError: attempt 1 fails on purpose"
RUNNER_LOST = "RunnerLost: runner ghost:1 stopped renewing its lease"
LOST = len(RUNNER_LOST)


def check_job_timeline(h: History) -> None:
    rows = run("job-timeline", job=h.flaky)
    assert [(seq, kind, runner, exc) for seq, kind, _at, runner, exc in rows] == [
        (1, "scheduled", None, None),
        (2, "started", h.me, None),
        (3, "failed", h.me, FAILED_ON_PURPOSE),
        (4, "retry", h.me, None),
        (5, "started", h.me, None),
        (6, "completed", h.me, None),
    ]


def check_failures_last_day(h: History) -> None:
    rows = run("failures-last-day")
    assert [(r[0], r[1], r[2], r[4][:LOST], r[5]) for r in rows] == [
        (h.recovered, "tests.handlers.record", "abandoned", RUNNER_LOST, True),
        (h.bad, "tests.handlers.boom", "failed", "ValueError: card declined", False),
        (h.flaky, "tests.handlers.fails_until", "failed", FAILED_ON_PURPOSE, True),
    ]
    retry_at = {r[0]: r[6] for r in rows}
    assert retry_at[h.bad] is None
    due = JobEvent.objects.get(job_id=h.flaky, kind="retry").data["due"]
    assert retry_at[h.flaky] == dt.datetime.fromisoformat(due)


def check_timings_per_callable(h: History) -> None:
    rows = run("timings-per-callable")
    # Attempts that ended in completed or failed: the abandoned and running ones are left out.
    assert {r[0]: r[1] for r in rows} == {
        "tests.handlers.touch_order": 1,
        "tests.handlers.record": 2,  # ok, and the recovered job's second attempt
        "tests.handlers.boom": 1,
        "tests.handlers.fails_until": 2,
        "tests.handlers.returns_number": 1,
    }
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    # Waits may be negative here: the retries ran with run_jobs(now=an hour later).
    assert all(r[2] is not None and r[3] >= dt.timedelta(0) for r in rows)


def check_started_twice(h: History) -> None:
    # Retries and a recovery start jobs again, each after the last attempt ended.
    assert run("started-twice") == []


# --- docs/audit.md -------------------------------------------------------------------------


def check_job_history(h: History) -> None:
    rows = run("job-history", job=h.recovered)
    assert [(seq, kind, runner) for seq, kind, _at, runner, _exc in rows] == [
        (1, "scheduled", None),
        (2, "started", "ghost:1"),
        (3, "abandoned", h.me),
        (4, "retry", h.me),
        (5, "started", h.me),
        (6, "completed", h.me),
    ]


def check_job_results(h: History) -> None:
    rows = run("job-results", job=h.gone)  # returns_number: 42
    # Django's cursor reads jsonb as text, or decoded, depending on what ran before.
    decoded = [(json.loads(r) if isinstance(r, str) else r, v) for _seq, _at, r, v in rows]
    assert decoded == [(42, "42")]
    assert run("job-results", job=h.bad) == []  # failed: no completion


def check_waiting_by_queue(h: History) -> None:
    rows = run("waiting-by-queue")
    # The job due in an hour: in the default queue at priority 0, not due yet.
    assert [(queue, priority, waiting, due_for) for queue, priority, waiting, due_for in rows] == [
        ("default", 0, 1, None)
    ]


def check_object_history(h: History) -> None:
    rows = run("object-history", obj=h.order)
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        (h.bound, 1, "scheduled", "tests.handlers.touch_order"),
        (h.bound, 2, "started", "tests.handlers.touch_order"),
        (h.bound, 3, "completed", "tests.handlers.touch_order"),
    ]


def check_queue_by_status(h: History) -> None:
    rows = run("queue-by-status")
    assert [(status, jobs) for status, jobs, _oldest in rows] == [
        ("cancelled", 1),
        ("complete", 4),  # bound, ok, flaky, recovered; gone's row was deleted
        ("expired", 1),
        ("failed", 1),
        ("running", 1),
        ("scheduled", 1),
    ]
    oldest = {status: due for status, _jobs, due in rows}
    assert oldest["scheduled"] == ScheduledJob.objects.get(pk=h.future).time_slot_start


def check_running_now(h: History) -> None:
    rows = run("running-now")
    assert [(job_id, name, runner) for job_id, name, runner, _start, _for in rows] == [
        (h.live, "tests.handlers.record", "alive:1")
    ]
    assert rows[0][4] >= dt.timedelta(0)


def check_failure_traceback(h: History) -> None:
    ((seq, error),) = run("failure-traceback", job=h.bad)
    assert seq == 3
    assert error.startswith("Traceback (most recent call last)")
    assert error.rstrip().endswith("ValueError: card declined")


def check_common_errors_week(h: History) -> None:
    rows = run("common-errors-week")
    assert sorted((name, exc[:LOST], times) for name, exc, times in rows) == [
        ("tests.handlers.boom", "ValueError: card declined", 1),
        ("tests.handlers.fails_until", FAILED_ON_PURPOSE, 1),
        ("tests.handlers.record", RUNNER_LOST, 1),  # the attempt its runner abandoned
    ]


def check_runner_activity(h: History) -> None:
    rows = run("runner-activity")
    # runner, started, completed, failed, recovered_from_others; latest first; then
    # whether its lease runs out after its last event, and whether it signed off (this
    # process's runners did, within their lease; the ghost's ran out while it held a job).
    assert [(*r[:5], r[7] > r[5], r[8] is not None) for r in rows] == [
        ("alive:1", 1, 0, 0, 0, True, False),
        # bound, ok, bad, flaky twice, recovered once, gone; the pruned job's events are gone.
        (h.me, 7, 5, 2, 1, True, True),
        ("ghost:1", 1, 0, 0, 0, False, False),
    ]


def check_runner_attempts(h: History) -> None:
    rows = run("runner-attempts", runner=h.me)
    assert [(r[0], r[1], r[2], r[4], r[5]) for r in rows] == [
        (h.bound, 1, "tests.handlers.touch_order", "completed", None),
        (h.ok, 1, "tests.handlers.record", "completed", None),
        (h.bad, 1, "tests.handlers.boom", "failed", "ValueError: card declined"),
        (h.flaky, 1, "tests.handlers.fails_until", "failed", FAILED_ON_PURPOSE),
        (h.recovered, 2, "tests.handlers.record", "completed", None),  # its retry was due first
        (h.flaky, 2, "tests.handlers.fails_until", "completed", None),
        (h.gone, 1, "tests.handlers.returns_number", "completed", None),
    ]


def check_job_attempts(h: History) -> None:
    rows = run("job-attempts", job=h.flaky)
    assert [(r[0], r[1], r[6]) for r in rows] == [(h.flaky, 1, "failed"), (h.flaky, 2, "completed")]
    retry = JobEvent.objects.get(job_id=h.flaky, kind="retry")
    assert rows[1][2] == dt.datetime.fromisoformat(retry.data["due"])  # due: the retry's time
    assert all(r[4] is not None and r[5] is not None for r in rows)


ATTEMPTS = {  # every started event, by callable: (attempts, completed, failed or abandoned)
    "tests.handlers.touch_order": (1, 1, 0),
    "tests.handlers.record": (4, 2, 1),  # ok; recovered: abandoned, completed; live: running
    "tests.handlers.boom": (1, 0, 1),
    "tests.handlers.fails_until": (2, 1, 1),
    "tests.handlers.returns_number": (1, 1, 0),
}


def check_callable_timings(h: History) -> None:
    rows = run("callable-timings")
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == ATTEMPTS
    assert all(None not in r[4:] and r[6] >= 0 and r[7] >= 0 for r in rows)


def check_timings_today(h: History) -> None:
    rows = run("timings-today")
    assert {r[0]: r[1] for r in rows} == {name: a for name, (a, _c, _f) in ATTEMPTS.items()}


def check_as_of_counts(h: History) -> None:
    rows = run("as-of-counts", instant=h.instant)
    # Before any runner ran: the pruned job is gone from the ledger, the late one not yet
    # expired, the recovered one in its dead runner's hands.
    assert sorted(rows) == [("cancelled", 1), ("running", 1), ("scheduled", 5)]


def check_as_of_running(h: History) -> None:
    rows = run("as-of-running", instant=h.instant)
    assert rows == [(h.recovered, "tests.handlers.record", "running", "ghost:1", 1)]


def check_chain_heads_export(h: History) -> None:
    rows = run("chain-heads-export")
    heads = {job_id: (seq, head) for job_id, seq, head in rows}
    assert {job_id: seq for job_id, (seq, _) in heads.items()} == {
        h.bound: 3,
        h.ok: 3,
        h.bad: 3,
        h.flaky: 6,
        h.cancelled: 2,
        h.late: 2,
        h.recovered: 6,
        h.gone: 4,
        h.future: 1,
        h.live: 2,
    }
    for job in ScheduledJob.objects.all():
        assert heads[job.pk][1] == job.last_hash


def check_hash_recompute(h: History) -> None:
    assert run("hash-recompute", job=h.flaky) == [(seq, True) for seq in range(1, 7)]


def check_prune_records(h: History) -> None:
    rows = run("prune-records")
    assert [(r[1], r[3], r[4], r[5]) for r in rows] == [("retention check", 1, 3, h.pruned_digest)]


def _keyed_jobs() -> tuple[int, int, int]:
    """Three keyed jobs beside the history: one ran, one holds 'sync-user-42' now, and one
    holds 'sync-user-7' while it runs (active)."""
    ran = schedule_job("0s", "tests.handlers.record", unique_key="sync-user-42")
    run_jobs()
    holder = schedule_job("1h", "tests.handlers.record", unique_key="sync-user-42")
    running = schedule_job(
        "1h", "tests.handlers.record", unique_key="sync-user-7", unique_while="active"
    )
    _in_the_hands_of(running, "alive:2", dt.timedelta(hours=1))
    return ran.pk, holder.pk, running.pk


def check_unique_key_jobs(h: History) -> None:
    ran, holder, _running = _keyed_jobs()
    rows = run("unique-key-jobs")
    assert [(job_id, holds, status) for job_id, _at, holds, status in rows] == [
        (ran, "pending", "complete"),
        (holder, "pending", "scheduled"),
    ]


def check_unique_key_holders(h: History) -> None:
    _ran, holder, running = _keyed_jobs()
    rows = run("unique-key-holders")
    assert [r[:4] for r in rows] == [
        ("sync-user-42", holder, "pending", "scheduled"),
        ("sync-user-7", running, "active", "running"),
    ]


def _periodic_history() -> tuple[list[int], str, str]:
    """Two definitions of 'nightly-report', three ticks made and run (the first one's row
    deleted by -d); the job ids, newest first, and the two definitions' hashes."""
    from django.test import override_settings

    from django_future.models import PeriodicChange
    from django_future.periodic import Ticker

    now = db_now()
    spec = {"callable": "tests.handlers.record", "timezone": "UTC", "catch_up": "all"}
    with override_settings(
        DJANGO_FUTURE_PERIODIC={"nightly-report": {"cron": "* * * * * *", **spec}}
    ):
        first = Ticker(runner="docs:1")
        first.start()
        first.enqueue_due(now + dt.timedelta(seconds=2))
        run_jobs(delete_completed=True, now=now + dt.timedelta(seconds=2))
    with override_settings(
        DJANGO_FUTURE_PERIODIC={"nightly-report": {"cron": "*/2 * * * * *", **spec}}
    ):
        second = Ticker(runner="docs:2")
        second.start()
        second.enqueue_due(now + dt.timedelta(seconds=6))
        run_jobs(now=now + dt.timedelta(seconds=6))
    hashes = list(PeriodicChange.objects.order_by("id").values_list("hash", flat=True))
    from django_future.models import PeriodicTick

    jobs = list(PeriodicTick.objects.order_by("-tick").values_list("job_id", flat=True))
    return jobs, hashes[0], hashes[1]


def check_periodic_ticks(h: History) -> None:
    jobs, _, _ = _periodic_history()
    rows = run("periodic-ticks")
    assert [r[1] for r in rows] == jobs and len(jobs) >= 3
    assert {r[2] for r in rows} == {"complete"}  # the first from its events, its row gone
    assert all(r[3] is not None for r in rows)
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), reverse=True)


def check_periodic_changes(h: History) -> None:
    _, old, new = _periodic_history()
    rows = run("periodic-changes")
    assert [(r[1], r[2], r[3]) for r in rows] == [
        (old, "* * * * * *", "docs:1"),
        (new, "*/2 * * * * *", "docs:2"),
    ]


def check_lock_overlaps(h: History) -> None:
    """None from our runners; a pair when two runs of one lock overlap. The database
    refuses that (the partial unique index django_future_lock_held), so the overlap is
    made as a superuser could, or as a ledger from before migration 0011 may hold one:
    the index dropped, two starts appended, then both runs ended and the index put back."""
    jobs = [schedule_job("0s", "tests.handlers.record", lock="doc-lock") for _ in range(3)]
    run_jobs()
    assert run("lock-overlaps") == []
    first = schedule_job("0s", "tests.handlers.record", lock="doc-lock")
    second = schedule_job("0s", "tests.handlers.record", lock="doc-lock")
    (held,) = [c for c in ScheduledJob._meta.constraints if c.name == "django_future_lock_held"]
    with connection.schema_editor() as editor:
        editor.remove_constraint(ScheduledJob, held)
    try:
        for job in (first, second):
            ledger.append(job.pk, "started", {"runner_id": None}, runner="by-hand")
        assert run("lock-overlaps") == [("doc-lock", first.pk, second.pk)]
    finally:
        for job in (first, second):
            ledger.append(job.pk, "failed", {"error": "ended by hand"}, only_if=["running"])
        with connection.cursor() as cursor:  # the appends' deferred checks, before the DDL
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        with connection.schema_editor() as editor:  # as the migration made it
            editor.add_constraint(ScheduledJob, held)
    assert jobs  # the three that ran one after another are not reported


CHECKS: dict[str, Callable[[History], None]] = {
    "job-timeline": check_job_timeline,
    "failures-last-day": check_failures_last_day,
    "timings-per-callable": check_timings_per_callable,
    "started-twice": check_started_twice,
    "job-history": check_job_history,
    "job-results": check_job_results,
    "waiting-by-queue": check_waiting_by_queue,
    "object-history": check_object_history,
    "queue-by-status": check_queue_by_status,
    "running-now": check_running_now,
    "failure-traceback": check_failure_traceback,
    "common-errors-week": check_common_errors_week,
    "runner-activity": check_runner_activity,
    "runner-attempts": check_runner_attempts,
    "job-attempts": check_job_attempts,
    "callable-timings": check_callable_timings,
    "timings-today": check_timings_today,
    "as-of-counts": check_as_of_counts,
    "as-of-running": check_as_of_running,
    "chain-heads-export": check_chain_heads_export,
    "hash-recompute": check_hash_recompute,
    "prune-records": check_prune_records,
    "unique-key-jobs": check_unique_key_jobs,
    "unique-key-holders": check_unique_key_holders,
    "periodic-ticks": check_periodic_ticks,
    "periodic-changes": check_periodic_changes,
    "lock-overlaps": check_lock_overlaps,
}


@pytest.mark.unit
def test_every_documented_block_has_a_name_and_a_check() -> None:
    assert NAMING_PROBLEMS == []
    assert sorted(set(BLOCKS) - set(CHECKS)) == [], "documented blocks with no check"
    assert sorted(set(CHECKS) - set(BLOCKS)) == [], "checks whose block is gone"


@pytest.mark.unit
def test_a_block_without_a_name_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- sql: one -->\n```sql\nSELECT 1;\n```\n\nText.\n\n```sql\nSELECT 2;\n```\n"
        "<!-- sql: one -->\n```sql\nSELECT 3;\n```\n"
    )
    monkeypatch.setattr(f"{__name__}.DOCS", [page])
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    blocks, problems = documented_blocks()
    assert blocks == {"one": "SELECT 1;\n"}
    assert problems == [
        "page.md:8: sql block without a '<!-- sql: NAME -->' line",
        "page.md:12: the name 'one' is used twice",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_documented_query_returns_what_the_history_says(history: History, name: str) -> None:
    CHECKS[name](history)


@pytest.mark.usefixtures("committed_db")
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_audit_role_runs_every_documented_query(
    history: History, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same blocks and the same rows, read by a role given only ``grant-audit``
    (connected as itself, so the history is committed first)."""
    with audit_role() as (_name, auditor):
        monkeypatch.setattr(f"{__name__}._cursor", auditor.cursor)
        CHECKS[name](history)


def _started_twice_rows() -> list[tuple[Any, ...]]:
    return run("started-twice")


@pytest.mark.django_db
def test_started_twice_ignores_a_start_handed_back_and_started_again() -> None:
    """A runner stopped mid-batch hands back the jobs it had not called (``released``); the
    next runner starts them again. That is not a job started twice."""
    stopper = schedule_job("0s", "tests.handlers.stop_the_runner")
    handed = schedule_job("0s", "tests.handlers.record", args=["handed back"])
    runner = Runner(batch_size=2)
    handlers.current_runner = runner
    try:
        assert runner.run().completed == [stopper.pk]
    finally:
        handlers.current_runner = None
    run_jobs()
    kinds = list(
        JobEvent.objects.filter(job_id=handed.pk).order_by("seq").values_list("kind", flat=True)
    )
    assert kinds == ["scheduled", "started", "released", "started", "completed"]
    assert _started_twice_rows() == []
    # Nor is the start handed back an attempt: the job ran once.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attempt, started_seq, outcome FROM django_future_attempts WHERE job_id = %s",
            [handed.pk],
        )
        assert cursor.fetchall() == [(1, 4, "completed")]


@pytest.mark.django_db
def test_started_twice_finds_a_second_start_of_the_same_attempt(history: History) -> None:
    """Forge what must never happen: a second ``started`` for the live job's attempt, with
    no outcome between the two. The fold refuses it, so the triggers are switched off as a
    table owner could, inside a savepoint that is rolled back."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE django_future_jobevent DISABLE TRIGGER USER")
            cursor.execute(
                "INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash) "
                "VALUES (%s, 3, 'started', statement_timestamp(), 'intruder:1', '{}', 'forged')",
                [history.live],
            )
            cursor.execute("ALTER TABLE django_future_jobevent ENABLE TRIGGER USER")
        assert _started_twice_rows() == [(history.live, 2, 3)]
        transaction.set_rollback(True)
    assert _started_twice_rows() == []


@pytest.mark.django_db
def test_a_time_window_is_served_by_the_ledgers_time_index(history: History) -> None:
    """docs/audit.md says a time window such as "the last day" reads the ledger through its
    BRIN index on ``at``. This ledger is tiny, so sequential scans are priced out."""
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
    assert (history.gone, "deleted") in events
    assert len(events) == JobEvent.objects.count()
