"""Where the CPU goes: client and server CPU per job, ours against the bare queue.

On a 2-core machine with four workers, throughput is bounded by CPU, so CPU per
job explains the throughput ratios. Client CPU is the worker processes' own
(``RUSAGE_CHILDREN`` around the run), less what the same processes spend on an
empty queue (start-up: importing Django, connecting). Server CPU is every
PostgreSQL process's (the postmaster's children, live and exited, read from
``/proc``), so it counts WAL writing and autovacuum too. Linux only, and only
for a server on this machine.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench import floor, ours
from bench.common import Result

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str]:
    # Fields after "(comm)"; comm may contain spaces, so split after its closing paren.
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def process_cpu(pid: int) -> tuple[float, float]:
    """The user and system CPU seconds used so far by process ``pid`` alone."""
    fields = _stat(pid)
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def server_cpu(dsn: str) -> Callable[[], float]:
    """A reader of the CPU seconds used so far by the server behind ``dsn``."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        postmaster = int(_stat(int(row[0]))[1])  # while the backend is alive

    def read() -> float:
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = _stat(int(entry))
            except OSError:
                continue  # exited meanwhile
            if int(entry) == postmaster:
                ticks += sum(int(x) for x in fields[11:15])  # own and reaped children's
            elif int(fields[1]) == postmaster:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / _TICK

    return read


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(dsn: str, run: Callable[[], object]) -> tuple[float, float]:
    """CPU seconds used while ``run`` runs: (worker processes' own, the server's)."""
    server = server_cpu(dsn)
    client0, server0 = _children_cpu(), server()
    run()
    return _children_cpu() - client0, server() - server0


def split(dsn: str, *, system: str, jobs: int, batch: int = 1) -> Result:
    """CPU per job of ``system`` ("ours" or "bare"), with 4 workers."""
    if system == "ours":
        ours.migrate(dsn)
        idle_client, idle_server = measure(
            dsn, lambda: ours.run_runners(dsn, jobs=0, runners=4, batch_size=batch)
        )
        ours.load(dsn, jobs)
        client, server = measure(
            dsn, lambda: ours.run_runners(dsn, jobs=jobs, runners=4, batch_size=batch)
        )
        client, server = client - idle_client, server - idle_server
    else:
        client, server = measure(
            dsn, lambda: floor.bare_queue(dsn, jobs=jobs, workers=4, batch=batch)
        )
    per_job = 1e6 / jobs  # microseconds per job
    per = "1 job per claim" if batch == 1 else f"batches of {batch}"
    return Result(
        name=f"CPU per job, {system}, 4 workers, {per}",
        value=(client + server) * per_job,
        unit="us",
        jobs=jobs,
        seconds=client + server,
        notes=f"workers {client * per_job:.0f} us + server {server * per_job:.0f} us",
        extra={"client_us": client * per_job, "server_us": server * per_job},
    )
