"""The two writes that step around the triggers guarding the ledger, and nothing else.

``rebuild`` rewrites every job row as the fold of its events; ``remove_jobs`` takes
finished jobs' events and rows out of the ledger for ``scheduledjobs prune``
(``audit.prune``, which records what it removed in the same transaction). Both go
through ``pgtrigger.ignore``, which turns the named triggers off for the statements
of its block, on this connection only. No other Python code does: see the package's
docstring for why the SQL writers' ``django_future.folded`` setting is a different
thing, and why the two are not merged.
"""

from __future__ import annotations

import pgtrigger
from django.db import connection, transaction

from django_future.ledger.replay import Difference, verify
from django_future.models import PROJECTION_GUARD
from django_future.sql import query

__all__ = ["LEDGER_GUARDS", "rebuild", "remove_jobs"]

#: The triggers that ``remove_jobs`` steps around: the events' append-only guard,
#: and the job table's (only the fold writes it).
LEDGER_GUARDS = (
    "django_future.JobEvent:append_only",
    PROJECTION_GUARD,
)


def rebuild() -> int:
    """Recompute the whole projection from the ledger; return how many rows changed.

    Runs in one transaction that locks the projection against concurrent
    runners. This is the only code that writes job rows outside the fold
    trigger, and it writes exactly what the fold says.
    """
    with transaction.atomic(), pgtrigger.ignore(PROJECTION_GUARD), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE django_future_scheduledjob IN EXCLUSIVE MODE")
        changed = sum(isinstance(p, Difference) for p in verify())
        cursor.execute("DELETE FROM django_future_scheduledjob")
        cursor.execute(query("rebuild"))
    return changed


def remove_jobs(job_ids: list[int]) -> None:
    """Delete the rows and every event of ``job_ids``: the one removal of history.

    Only for ``audit.prune``, which chooses finished jobs and records what went, in
    the caller's transaction (this must run inside one: ``transaction.atomic()``).
    """
    with pgtrigger.ignore(*LEDGER_GUARDS), connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_future_scheduledjob WHERE id = ANY(%s)", [job_ids])
        cursor.execute("DELETE FROM django_future_jobevent WHERE job_id = ANY(%s)", [job_ids])
