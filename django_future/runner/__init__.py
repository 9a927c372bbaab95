"""Claiming and running due jobs.

A runner registers itself (``RunnerProcess``) with a lease that a heartbeat
thread renews on its own connection. Each pass it

1. recovers jobs whose runner is gone (``abandoned`` or ``released``), then
   retries or fails them by their policy;
2. appends ``expired`` to scheduled jobs whose window closed;
3. claims due jobs with ``FOR UPDATE SKIP LOCKED``, appending ``started`` to
   each (a batch starts together, in one statement), calls each outside any
   transaction (inside one for ``atomic`` jobs), and appends ``completed`` or
   ``failed`` (then ``retry`` if attempts are left). Plain completions go with
   the next claim, in the same round trip and transaction; jobs of a batch
   not called when the runner stops are handed back (``released``).

Any number of runners can work at once: a job's ``scheduled -> running`` step
happens in exactly one of them, and while a runner's lease is renewed no
other runner touches its jobs, however long they run.

The modules, each read in one sitting:

- ``loop.py``: ``Runner`` (register, upkeep, the claim loop, stop and drain,
  signals, a worker's sleep between claims) and ``run_jobs``;
- ``executor.py``: calling one job (``resolve``, ``atomic``, its outcome, its
  failure and the retry decision);
- ``lease.py``: registering, the heartbeat thread and its connection, signing off,
  and the upkeep that recovers the jobs of runners whose lease lapsed and expires
  overdue jobs;
- ``report.py``: ``RunReport`` and ``JobIds``, the runner's log lines, and
  ``JobFailedError`` and ``DatabaseLostError``.

The runner writes no event itself: the ledger sends every statement that does
(``django_future.ledger``), the per-job claim and completions through the
``ledger.Wire`` that the runner holds.
"""

from __future__ import annotations

from django_future.runner.executor import resolve
from django_future.runner.loop import Runner, run_jobs
from django_future.runner.report import DatabaseLostError, JobFailedError, JobIds, RunReport

__all__ = [
    "DatabaseLostError",
    "JobFailedError",
    "JobIds",
    "RunReport",
    "Runner",
    "resolve",
    "run_jobs",
]
