#!/usr/bin/env python3
"""The django-future-ledger demo: schedule a shop's jobs, run three runners at once, audit in SQL.

Run it with ``python3 dev.py demo`` (a throwaway PostgreSQL server), or against your own
database with ``DATABASE_URL=postgresql://... python demo/run_demo.py``. It can run any
number of times against the same database: it reports only on jobs from its own first id on.

Steps:
  1. set Django up and migrate;
  2. schedule a realistic mix of jobs in one transaction;
  3. start three ``manage.py runscheduledjobs --ignore-errors`` processes at the same
     moment, as cron on three machines would, and wait for them;
  4. audit what happened with plain SQL against the ledger, its audit view and the job
     table, and check that the job table agrees with the ledger;
  5. say where to look next: the SQL views, the commands and the admin;
  6. with ``--serve`` (``python3 dev.py demo --serve``), keep the admin and its jobs
     dashboard up on 127.0.0.1:8000 with a staff user it prints, until Ctrl-C.

Exits non-zero, saying why, if a runner failed, a job ran twice, a job did not end the
way it should have, or the job table disagrees with the ledger.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_DIR = Path(__file__).resolve().parent
REPO_ROOT = DEMO_DIR.parent
MANAGE_PY = DEMO_DIR / "manage.py"
RUNNERS = 3
RUNNER_TIMEOUT = 120  # seconds; the runners need a few

# --- Django setup -------------------------------------------------------------------------
# Before anything imports Django models: the repository root on sys.path (for `demo` and
# `tools`), the settings module in the environment (the runner processes inherit it).
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.demo_project.settings")
if not os.environ.get("DATABASE_URL", "").strip():
    sys.exit(
        "run_demo: DATABASE_URL is not set. Run `python3 dev.py demo` (it starts a throwaway "
        "PostgreSQL server), or set DATABASE_URL to a libpq URL such as "
        "postgresql://user:password@localhost:5432/demo"
    )

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import OperationalError, connection, transaction  # noqa: E402

from demo.shop.handlers import DECLINED_TEST_CARD  # noqa: E402
from demo.shop.models import Order  # noqa: E402
from demo.shop.tasks import count_paid_orders, send_receipt, warm_product_cache  # noqa: E402
from django_future import schedule_job  # noqa: E402
from django_future.ledger import verify  # noqa: E402
from django_future.models import ScheduledJob  # noqa: E402

HANDLERS = "demo.shop.handlers"
GOOD_CARD = "4242424242424242"  # the payment provider's test card that always works


# --- a tiny table printer -----------------------------------------------------------------


def _cell(value: object) -> str:
    """One value as table text: times to the millisecond, intervals to the second."""
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%H:%M:%S.%f")[:-3]
    if isinstance(value, dt.timedelta):
        return str(value - dt.timedelta(microseconds=value.microseconds))
    text = str(value)
    return text if len(text) <= 100 else text[:99] + "…"


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  "
) -> None:
    """Print rows under their column names, aligned; numbers to the right."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(columns)]
    numeric = [
        bool(rows) and all(isinstance(row[i], int | float) for row in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return (indent + "  ".join(parts)).rstrip()

    print(line(list(columns)))
    print(indent + "  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))
    if not rows:
        print(indent + "(no rows)")


def heading(text: str) -> None:
    print(f"\n== {text} " + "=" * max(4, 86 - len(text)))


def sql_table(title: str, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Print a query (values shown in place of its placeholders), run it, print its rows."""
    print(f"\n-- {title}")
    shown = re.sub(r"%\((\w+)\)s", lambda m: repr(params[m.group(1)]), sql.strip())
    for sql_line in shown.splitlines():
        print(f"   {sql_line}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [col.name for col in cursor.description]
        rows = cursor.fetchall()
    print_table(columns, rows)
    return rows


# --- 1. migrate ---------------------------------------------------------------------------


def migrate() -> None:
    heading("1. migrate")
    settings = connection.settings_dict
    where = settings["HOST"] or "localhost"
    print(f"database {settings['NAME']!r} on {where}")
    try:
        call_command("migrate", verbosity=0)
    except OperationalError as exc:
        sys.exit(f"run_demo: cannot reach the database: {exc}")
    print("migrations applied (contenttypes, auth, admin, sessions, django_future, shop)")


# --- 2. schedule --------------------------------------------------------------------------


@dataclass
class Plan:
    """What this run scheduled, and how each job should end once the runners are done."""

    expected: dict[int, str]  # job id -> "complete" | "failed" | "expired" | "scheduled" | ...
    first_id: int
    payment_failure_id: int
    tasks: list[Any]  # the TaskResults of the tasks enqueued through django.tasks


def schedule() -> Plan:
    """Create a dozen orders and schedule 36 jobs for them, all in one transaction."""
    heading("2. schedule jobs (one transaction)")
    expected: dict[int, str] = {}
    summary: list[tuple[int, str, str, str, str, str]] = []

    def add(
        jobs: Sequence[ScheduledJob | int],
        ends: str,
        what: str,
        bound: str,
        when: str,
        expires: str,
    ) -> None:
        for job in jobs:
            expected[job if isinstance(job, int) else job.pk] = ends
        summary.append((len(jobs), what, bound, when, expires, ends))

    with transaction.atomic():
        # Order numbers continue from earlier runs against the same database.
        last = Order.objects.order_by("-number").values_list("number", flat=True).first()
        start = (last or 1000) + 1
        orders = [
            Order.objects.create(
                number=start + i,
                customer_email=f"customer{start + i}@example.com",
                total_cents=1990 + 750 * i,
            )
            for i in range(12)
        ]
        cancelled = orders.pop()  # its reminder is scheduled, then the order is deleted

        # Due now: a reminder for each of ten orders, bound to the order (Order.send_reminder).
        jobs = [schedule_job("0s", "send_reminder", content_object=o) for o in orders[:10]]
        add(jobs, "complete", "Order.send_reminder", "an order", "now", "7d")

        # Dotted path: the handler gets the order first, then a keyword argument.
        notify = f"{HANDLERS}.notify_warehouse"
        jobs = [
            schedule_job("0s", notify, content_object=o, kwargs={"priority": priority})
            for o, priority in zip(orders[:6], ["standard", "express"] * 3, strict=True)
        ]
        add(jobs, "complete", "notify_warehouse(order, priority=)", "an order", "now", "7d")

        # Payment captures with positional arguments: four go through...
        capture = f"{HANDLERS}.capture_payment"
        jobs = [
            schedule_job("0s", capture, content_object=o, args=[o.total_cents, GOOD_CARD])
            for o in orders[:4]
        ]
        add(jobs, "complete", "capture_payment(order, cents, card)", "an order", "now", "7d")
        # ...and one card is declined: the handler raises PaymentDeclinedError.
        args = [orders[4].total_cents, DECLINED_TEST_CARD]
        declined = schedule_job("0s", capture, content_object=orders[4], args=args)
        add([declined], "failed", "capture_payment, declined card", "an order", "now", "7d")

        # A reminder for an order that is cancelled (deleted) before the job runs.
        jobs = [schedule_job("0s", "send_reminder", content_object=cancelled)]
        add(jobs, "failed", "Order.send_reminder, order deleted", "an order", "now", "7d")
        cancelled.delete()

        # Slow reports (0.2 s each), not bound to anything: the runners overlap on these.
        jobs = [
            schedule_job("0s", f"{HANDLERS}.rebuild_sales_report", args=[r], kwargs={"days": 30})
            for r in ("DE", "FR", "NL", "BE", "AT", "CH")
        ]
        add(jobs, "complete", "rebuild_sales_report(region, days=)", "-", "now", "7d")

        # Positional arguments only, and a window that never closes.
        jobs = [schedule_job("0s", f"{HANDLERS}.send_newsletter", args=["vip", 42], expires=None)]
        add(jobs, "complete", "send_newsletter(segment, issue)", "-", "now", "never")

        # A recurring check: it gets its own job and schedules its next run a day later.
        kw = {"max_reminders": 3}
        jobs = [schedule_job("0s", f"{HANDLERS}.check_abandoned_carts", kwargs=kw)]
        add(jobs, "complete", "check_abandoned_carts(job, ...)", "-", "now", "7d")

        # A flaky call with retries: attempt 1 times out, the retry (due at once, since
        # retry_delay is 0s here; 30 s by default, doubling) succeeds in the next pass.
        jobs = [
            schedule_job(
                "0s", f"{HANDLERS}.sync_inventory", args=["SKU-42"], retries=2, retry_delay="0s"
            )
        ]
        add(jobs, "complete", "sync_inventory(job, sku), retries=2", "-", "now", "7d")

        # Cancelled before it ran, saying who and why: it never runs.
        gift = schedule_job("1h", "send_reminder", content_object=orders[1])
        gift.cancel(by="ops@example.com", reason="customer asked for no more reminders")
        add([gift], "cancelled", "Order.send_reminder, cancelled", "an order", "in 1h", "7d")

        # Due 30 minutes ago with a 10-minute window: expired before any runner saw them.
        jobs = [
            schedule_job(
                dt.timedelta(minutes=-30), "send_reminder", content_object=o, expires="10m"
            )
            for o in orders[6:8]
        ]
        add(jobs, "expired", "Order.send_reminder (flash sale)", "an order", "30 min ago", "10m")

        # Not due yet: these stay scheduled.
        jobs = [schedule_job("2h", "send_reminder", content_object=o) for o in orders[8:10]]
        add(jobs, "scheduled", "Order.send_reminder", "an order", "in 2h", "7d")
        jobs = [schedule_job("1d", f"{HANDLERS}.rebuild_sales_report", args=["EU"])]
        add(jobs, "scheduled", "rebuild_sales_report(region)", "-", "in 1d", "7d")
        review = f"{HANDLERS}.request_review"
        jobs = [schedule_job("1w", review, content_object=orders[0], expires=None)]
        add(jobs, "scheduled", "request_review(order)", "an order", "in 1w", "never")

        # The same ledger behind Django's standard task API: each enqueue() is a job, in
        # this transaction like the rest, with its queue and priority.
        tasks = [send_receipt.enqueue(o.number, o.customer_email) for o in orders[:3]]
        add([int(t.id) for t in tasks], "complete", "task send_receipt", "-", "now", "7d")
        tasks.append(count_paid_orders.enqueue("EU"))
        tasks.append(warm_product_cache.enqueue("front-page"))
        add([int(t.id) for t in tasks[3:]], "complete", "tasks: context, async", "-", "now", "7d")

    first_id = min(expected)
    due = sum(1 for job_id, ends in expected.items() if ends in ("complete", "failed"))
    print(
        f"{len(orders) + 1} orders created (one since cancelled); {len(expected)} jobs "
        f"scheduled, ids {first_id}..{max(expected)}, {due} of them due now:\n"
    )
    print_table(["jobs", "callable", "bound to", "due", "expires", "should end"], summary)
    return Plan(expected, first_id, declined.pk, tasks)


# --- 3. run three runners at once ---------------------------------------------------------


@dataclass
class RunnerResult:
    pid: int
    returncode: int | None  # None: killed after the timeout
    seconds: float
    output: str


def run_runners(count: int = RUNNERS, title: str = "") -> list[RunnerResult]:
    """Start ``count`` ``runscheduledjobs`` processes at the same moment and wait for them."""
    heading(title or f"3. run {count} runners at once")
    command = [sys.executable, str(MANAGE_PY), "runscheduledjobs", "--ignore-errors"]
    print("$ " + " ".join(["python", "demo/manage.py", *command[2:]]) + f"   (x{count})")
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(count)
    ]
    results = []
    try:
        for proc in procs:
            left = max(1.0, RUNNER_TIMEOUT - (time.monotonic() - started))
            try:
                output, _ = proc.communicate(timeout=left)
                code: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
                code = None
            results.append(RunnerResult(proc.pid, code, time.monotonic() - started, output))
    finally:
        for proc in procs:  # Ctrl-C or an error here: leave no runner behind
            if proc.poll() is None:
                proc.kill()

    host = socket.gethostname()
    for n, result in enumerate(results, 1):
        status = f"exit {result.returncode}" if result.returncode is not None else "killed"
        print(f"runner {n}: {host}:{result.pid}  {status}  (done after {result.seconds:.2f}s)")
        # At the default verbosity a runner prints nothing but warnings (one per failed job).
        for out_line in result.output.strip().splitlines():
            print(f"    | {out_line}")
    return results


def report_leftovers(first_id: int, runners: list[RunnerResult]) -> None:
    """Say so if the runners also ran due jobs that an earlier run of the demo left behind."""
    identities = [f"{socket.gethostname()}:{r.pid}" for r in runners]
    with connection.cursor() as cursor:
        cursor.execute(LEFTOVERS_SQL, {"first": first_id, "runners": identities})
        (count,) = cursor.fetchone()
    if count:
        print(
            f"note: the runners also ran {count} due job(s) left over from earlier runs "
            f"(ids < {first_id}); the audit below covers this run's jobs only"
        )


# --- 4. audit in SQL ----------------------------------------------------------------------

STATUS_SQL = """
SELECT status, count(*) AS jobs
FROM django_future_scheduledjob
WHERE id >= %(first)s
GROUP BY status
ORDER BY status
"""

RUNNERS_SQL = """
SELECT runner,
       count(*) FILTER (WHERE kind = 'started')   AS started,
       count(*) FILTER (WHERE kind = 'completed') AS completed,
       count(*) FILTER (WHERE kind = 'failed')    AS failed,
       count(*) FILTER (WHERE kind = 'expired')   AS expired,
       min(at) AS first_event, max(at) AS last_event
FROM django_future_jobevent
WHERE job_id >= %(first)s AND runner IS NOT NULL
GROUP BY runner
ORDER BY runner
"""

TWICE_SQL = """
SELECT count(*) AS jobs_started,
       count(*) FILTER (WHERE starts > 1 + retries) AS started_more_than_allowed
FROM (SELECT job_id,
             count(*) FILTER (WHERE kind = 'started') AS starts,
             count(*) FILTER (WHERE kind = 'retry') AS retries
      FROM django_future_jobevent
      WHERE job_id >= %(first)s
      GROUP BY job_id
      HAVING count(*) FILTER (WHERE kind = 'started') > 0) AS per_job
"""

TIMELINE_SQL = """
SELECT seq, kind, at, runner, args, exception
FROM django_future_job_history
WHERE job_id = %(job)s
ORDER BY seq
"""

FAILURES_SQL = """
SELECT job_id, callable_name, exception, will_retry
FROM django_future_failures
WHERE job_id >= %(first)s
ORDER BY job_id, seq
"""

TIMINGS_SQL = """
SELECT callable_name, count(*) AS attempts,
       round(avg(extract(epoch FROM wait_time))::numeric, 3) AS avg_wait_s,
       round(max(extract(epoch FROM run_time))::numeric, 3) AS max_run_s
FROM django_future_attempts
WHERE job_id >= %(first)s
GROUP BY callable_name
ORDER BY callable_name
"""

CANCELLED_SQL = """
SELECT job_id, callable_name, at, data->>'by' AS by, data->>'reason' AS reason
FROM django_future_job_history
WHERE kind = 'cancelled' AND job_id >= %(first)s
ORDER BY job_id
"""

EXPIRED_SQL = """
SELECT job_id, callable_name, object_id,
       (data->>'time_slot_end')::timestamptz AS window_closed, at AS expired_at, runner
FROM django_future_job_history
WHERE kind = 'expired' AND job_id >= %(first)s
ORDER BY job_id
"""

WAITING_SQL = """
SELECT j.id, j.callable_name, j.object_id, j.args,
       date_trunc('second', j.time_slot_start - now()) AS due_in,
       coalesce(date_trunc('second', j.time_slot_end - j.time_slot_start)::text, 'never')
           AS window,
       e.data->>'rescheduled_from' AS rescheduled_from
FROM django_future_scheduledjob j
JOIN django_future_jobevent e ON e.job_id = j.id AND e.seq = 1
WHERE j.status = 'scheduled' AND j.id >= %(first)s
ORDER BY j.time_slot_start, j.id
"""

RETURNED_SQL = """
SELECT DISTINCT ON (callable_name) callable_name, job_id, return_value
FROM django_future_job_history
WHERE kind = 'completed' AND job_id >= %(first)s
ORDER BY callable_name, job_id
"""

# Not printed: the data for the final checks.
OUTCOMES_SQL = """
SELECT j.id, j.status, (e.data->>'rescheduled_from')::bigint AS rescheduled_from
FROM django_future_scheduledjob j
JOIN django_future_jobevent e ON e.job_id = j.id AND e.seq = 1
WHERE j.id >= %(first)s
"""
LEFTOVERS_SQL = """
SELECT count(*) FROM django_future_jobevent
WHERE kind = 'started' AND job_id < %(first)s AND runner = ANY(%(runners)s)
"""


def audit(plan: Plan, runners: list[RunnerResult]) -> list[str]:
    """Print the audit and return the problems found (an empty list: all is well)."""
    heading(f"4. audit in SQL (jobs with id >= {plan.first_id}: this run's; times in UTC)")
    problems = [
        f"runner {n} (pid {r.pid}) "
        + ("was killed after the timeout" if r.returncode is None else f"exited {r.returncode}")
        for n, r in enumerate(runners, 1)
        if r.returncode != 0
    ]
    first = {"first": plan.first_id}

    sql_table("jobs by status", STATUS_SQL, first)

    rows = sql_table("who did the work: events written per runner (host:pid)", RUNNERS_SQL, first)
    together = {f"{socket.gethostname()}:{r.pid}" for r in runners[:RUNNERS]}
    working = [row for row in rows if row[1] > 0 and row[0] in together]
    if len(working) < RUNNERS:
        print(f"  note: only {len(working)} of the {RUNNERS} runners got a job this time")
    elif max(row[5] for row in working) < min(row[6] for row in working):
        print(f"  -> all {RUNNERS} runners were busy at the same moment, sharing the queue")

    ((_jobs_started, too_often),) = sql_table(
        "no job started twice (a job starts once, plus once per retry)", TWICE_SQL, first
    )
    if too_often:
        problems.append(f"{too_often} job(s) started more often than their retries allow")

    sql_table(
        f"timeline of job {plan.payment_failure_id}, the declined payment",
        TIMELINE_SQL,
        {"job": plan.payment_failure_id},
    )
    sql_table("what the handlers returned (first job of each)", RETURNED_SQL, first)
    sql_table(
        "failures, with their one-line exception and whether a retry follows", FAILURES_SQL, first
    )
    sql_table("waiting and run times per callable (django_future_attempts)", TIMINGS_SQL, first)
    sql_table("cancelled, by whom and why", CANCELLED_SQL, first)
    sql_table("expired before they could run", EXPIRED_SQL, first)
    sql_table("still waiting (not due yet)", WAITING_SQL, first)

    # Did every job end the way it should have? Besides the planned jobs there is the
    # follow-up that our check_abandoned_carts job scheduled for itself: it should wait.
    # (Other ids in the range are jobs that jobs left over from an earlier run scheduled.)
    with connection.cursor() as cursor:
        cursor.execute(OUTCOMES_SQL, first)
        rows = cursor.fetchall()
    outcomes = {job_id: status for job_id, status, _ in rows}
    follow_ups = {job_id for job_id, _, origin in rows if origin in plan.expected}
    expected = {**plan.expected, **dict.fromkeys(follow_ups, "scheduled")}
    wrong = {
        job_id: (want, outcomes.get(job_id))
        for job_id, want in expected.items()
        if want != outcomes.get(job_id)
    }
    # One problem per kind of mismatch, e.g. "3 jobs should be complete but are scheduled".
    mismatches: dict[tuple[str | None, str | None], list[int]] = {}
    for job_id, (want, got) in sorted(wrong.items()):
        mismatches.setdefault((want, got), []).append(job_id)
    for (want, got), ids in mismatches.items():
        shown = ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "")
        problems.append(f"{len(ids)} job(s) should be {want} but are {got}: {shown}")
    if len(follow_ups) != 1:
        problems.append(
            f"expected 1 follow-up job from check_abandoned_carts, found {len(follow_ups)}"
        )
    tally = Counter(outcomes[job_id] for job_id in expected if job_id in outcomes)
    print(
        f"\nexpected outcomes: {len(expected) - len(wrong)} of {len(expected)} jobs ended as "
        f"planned ({', '.join(f'{n} {s}' for s, n in sorted(tally.items()))})"
    )

    differences = verify()
    print(
        f"django_future.ledger.verify() -> {differences!r}"
        + ("   (the job table is exactly the fold of the ledger)" if not differences else "")
    )
    problems += [f"verify: {d}" for d in differences]
    return problems


# --- 4b. the tasks' results, read back from the ledger -------------------------------------

TASK_HISTORY_SQL = """
SELECT seq, kind, at, runner, data->'result' AS result
FROM django_future_jobevent
WHERE job_id = %(job)s
ORDER BY seq
"""


def task_results(plan: Plan) -> list[str]:
    """Refresh each TaskResult (a read of the ledger) and show what Django's API sees."""
    heading("4b. django.tasks: the results, read back from the ledger")
    problems = []
    rows = []
    for result in plan.tasks:
        result.refresh()
        value = result.return_value if result.status == "SUCCESSFUL" else None
        if result.status != "SUCCESSFUL":
            problems.append(f"task {result.id} ({result.task.name}) is {result.status}")
        rows.append(
            (
                result.id,
                result.task.name,
                result.task.queue_name,
                result.task.priority,
                str(result.status),
                result.attempts,
                ", ".join(result.worker_ids),
                value,
            )
        )
    columns = ["id", "task", "queue", "priority", "status", "attempts", "worker", "return_value"]
    print_table(columns, rows)
    print("\n(a result's id is its job's id: `scheduledjobs show ID` and the admin show the same)")
    first = plan.tasks[0]
    sql_table(f"the ledger's history of task {first.id}", TASK_HISTORY_SQL, {"job": first.id})
    return problems


# --- 5. where to look next ----------------------------------------------------------------

VIEWS = (
    ("django_future_job_history", "one row per event, with what the job was"),
    ("django_future_job_state", "every live job as it stands, with its last event"),
    ("django_future_attempts", "one row per attempt: when due, started, finished, how"),
    ("django_future_failures", "failed and abandoned attempts, and whether a retry follows"),
    ("django_future_runner_activity", "what each runner (host:pid) did"),
    ("django_future_callable_timings", "waiting and run times per callable, p50 and p95"),
    ("django_future_jobs_as_of(instant)", "every job as it stood at a past instant"),
)


def where_next(plan: Plan) -> None:
    """Point to the three ways in: the SQL views, the commands and the admin."""
    heading("5. where to look next")
    print("the SQL views (psql, or any SQL client; queries in docs/audit.md):")
    width = max(len(name) for name, _ in VIEWS)
    for name, what in VIEWS:
        print(f"  {name.ljust(width)}  {what}")
    print("\nthe commands (with the same DATABASE_URL):")
    for action in ("status", f"show {plan.payment_failure_id}", "verify"):
        print(f"  python demo/manage.py scheduledjobs {action}")
    print(
        "\nthe admin (python3 dev.py demo --serve keeps it up, with a staff user):\n"
        f"  {DASHBOARD}  the jobs dashboard: runners, queues, throughput\n"
        "  /admin/django_future/scheduledjob/  jobs: filters, search, each job's timeline\n"
        "  /admin/django_future/jobevent/      the ledger, read-only"
    )
    print(
        "\n(python3 dev.py demo deletes its throwaway database when it ends; --serve keeps "
        "it, and a server,\n until Ctrl-C; or run demo/run_demo.py with DATABASE_URL set to "
        "your own PostgreSQL.)"
    )


DASHBOARD = "/admin/django_future/scheduledjob/dashboard/"


def serve(port: int) -> int:
    """Leave the admin up on 127.0.0.1:``port`` with a staff user, until Ctrl-C."""
    import secrets

    from django.contrib.auth import get_user_model

    heading("6. the admin, until Ctrl-C")
    password = secrets.token_urlsafe(9)
    user, _ = get_user_model().objects.get_or_create(username="demo")
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    command = [sys.executable, str(MANAGE_PY), "runserver", f"127.0.0.1:{port}"]
    # --insecure: the admin's CSS from the apps, as DEBUG is off; --noreload: one process.
    server = subprocess.Popen([*command, "--noreload", "--insecure"], cwd=REPO_ROOT)
    stopped = []

    def stop(signum: int, frame: object) -> None:
        # A handler, not KeyboardInterrupt: Python raises that wherever the main thread
        # is, a finaliser included, which swallows it, and the server would run on.
        stopped.append(signum)
        server.terminate()

    try:
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        # Printed once the server is started and Ctrl-C stops it too.
        print(f"dashboard: http://127.0.0.1:{port}{DASHBOARD}")
        print(f"log in as: demo / {password}")
        code = server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait()
    if stopped:
        print("run_demo: server stopped")
        return 0
    return code


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help="then keep the admin up until Ctrl-C")
    parser.add_argument("--port", type=int, default=8000, help="for --serve (default 8000)")
    options = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    migrate()
    plan = schedule()
    runners = run_runners()
    # A pass runs what was due when it started; the flaky job's retry, due at once,
    # is for the next pass, as cron would start it a minute later.
    runners += run_runners(1, "3b. a minute later: cron's next pass runs the retry")
    report_leftovers(plan.first_id, runners)
    problems = audit(plan, runners)
    problems += task_results(plan)
    print(flush=True)
    if problems:
        print(f"run_demo: FAILED, {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    else:
        print(
            "run_demo: OK - every due job ran once per attempt, in one of three concurrent "
            "runners; the ledger and the job table agree."
        )
    where_next(plan)
    if options.serve:
        return serve(options.port) or (1 if problems else 0)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
