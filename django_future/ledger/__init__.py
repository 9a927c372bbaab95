"""The job ledger: the one place in Python that writes events.

Every change of a job is an ``INSERT`` into ``django_future_jobevent``. The fold
(``sql/fold.sql``), applied by the fold trigger (``sql/fold_trigger.sql``) or by the
SQL function that appended the events, moves the job's row in the same statement, so
no Python code writes ``django_future_scheduledjob`` either, but ``rebuild``.

Who sends what
--------------

Every statement that appends (or removes) events is sent from a module of this
package, and from nowhere else in Python:

- ``writes.py``: one event for one job (``append``) and ``cancel``; ``scheduled``
  events, for ``schedule_job`` and ``schedule_jobs``; and the runner's recovery,
  retries, expiry and hand-backs;
- ``wire.py``: the runner's per-job statements (its claim and its completions), on a
  prepared psycopg cursor that the runner holds (``Wire``);
- ``ticks.py``: periodic schedules' definitions and the jobs of their due ticks, for
  ``django_future.periodic``;
- ``replay.py``: reading back (``verify``, ``jobs_as_of``), and the two writes around
  the guards, ``rebuild`` and ``remove_jobs`` (for ``scheduledjobs prune``).

The layers
----------

The ledger imports ``models``, ``config`` and ``sql``, and nothing above it. Periodic
schedules (``django_future.periodic``) sit on it, below the runner that calls them. The
scheduler and the runner sit on it side by side (and never import each other: what
they share is in ``callables.py``, ``retries.py`` and ``taskhook.py``, below both);
the admin, the audit, the system checks, the task backend (``backends``) and the
management commands sit on top.
``tests/setup/test_layers.py`` fails on an import against these arrows, or on any
import cycle, imports inside functions included.

Two ways past the guards, on purpose
------------------------------------

The database refuses ``UPDATE`` and ``DELETE`` on the events, and any write to the job
table that does not come from the fold. Two things step around those triggers, and they
stay two because they do different things:

- The transaction-local setting ``django_future.folded`` (``sql/append.sql``) is set
  and cleared inside the SQL functions that append events and fold them in the same
  statement (the runner's claim and completions, ``schedule_jobs``, ``append``). While
  it is on, the fold trigger and the job table's guard stand aside, because the writer
  applies the same fold itself. It permits nothing else: events are still only
  inserted, each checked by the fold. Python never sets it.
- ``pgtrigger.ignore`` (``replay.py``) turns the guards off for a block of statements on
  one connection, for the two writes that are not folds of new events: ``rebuild``
  (rewrites job rows) and ``remove_jobs`` (deletes events, for ``prune``, which
  records what it removed).

Merging them would widen one or slow the other. Letting the writers' setting also
allow ``DELETE`` on the events would turn a switch that only skips a repeated fold into
one that erases history. Making the writers use ``pgtrigger.ignore`` instead would not
work on the hot path: it goes through Django's cursor wrappers, prefixing every
statement with a ``set_config`` call (two statements, which cannot be prepared, on a
cursor the runner's wire does not use) and sending one more when its block ends.
docs/design.md says the same for readers of the design.
"""

from __future__ import annotations

from django_future.ledger import ticks
from django_future.ledger.replay import (
    LEDGER_GUARDS,
    BrokenChain,
    Difference,
    jobs_as_of,
    rebuild,
    remove_jobs,
    verify,
)
from django_future.ledger.wire import Completion, Wire
from django_future.ledger.writes import (
    ConcurrentAppendError,
    JobGoneError,
    JobStateError,
    append,
    cancel,
    expire,
    recover,
    release,
    retry,
    runner_identity,
    schedule,
    schedule_chunks,
    schedule_unique,
)

__all__ = [
    "LEDGER_GUARDS",
    "BrokenChain",
    "Completion",
    "ConcurrentAppendError",
    "Difference",
    "JobGoneError",
    "JobStateError",
    "Wire",
    "append",
    "cancel",
    "expire",
    "jobs_as_of",
    "rebuild",
    "recover",
    "release",
    "remove_jobs",
    "retry",
    "runner_identity",
    "schedule",
    "schedule_chunks",
    "schedule_unique",
    "ticks",
    "verify",
]
