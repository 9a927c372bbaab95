"""The package's SQL: the current definition of every database object, and the named
queries sent at run time.

The live files
--------------

Each function, type and view the package creates is defined once, in the file of its
family beside this module, and that file holds its current definition:

- ``hash.sql``: the hash chain: ``django_future_event_hash``, the stamp of rows written
  without a hash, and why a stamp is refused;
- ``types.sql``: the composite types that the transition functions return;
- ``fold.sql``: the fold (``django_future_fold``), and the transition functions it calls
  and the writers inline;
- ``fold_trigger.sql``: what the fold trigger calls, ``django_future_apply_events``;
- ``replay.sql``: replay, ``verify``'s replay and time travel;
- ``append.sql``: one event appended to one job and folded by the trigger, and why the
  hot writers fold their own (the ``django_future.folded`` setting);
- ``locks.sql``: locks and queue limits, the claim's arbiter (``django_future_acquire``);
- ``claim.sql``: which jobs are due (``django_future_due``, the one definition that
  every claim calls), starting them, and the runner's claim;
- ``complete.sql``: the runner's completions and its step
  (``django_future_complete_and_claim``, which keeps an in-line copy of the start and
  of a completion, for speed: see the file);
- ``schedule.sql``: one job of ``schedule_job()``;
- ``bulk.sql``: one chunk of ``schedule_jobs()``;
- ``unique.sql``: jobs with a unique key, one or a chunk, and which jobs hold their key;
- ``views.sql``: the audit views (docs/audit.md);
- ``periodic.sql``: periodic schedules: their definitions recorded, one job per tick,
  and the view of their ticks (docs/periodic.md);
- ``metrics.sql``: the fold of new events into the metrics' totals at scrape time
  (docs/metrics.md).

:data:`LIVE_FILES` is the order in which they run (a file may use what an earlier one
defines); :func:`live_sql` joins them. The tables, their indexes and the triggers are
declared in ``django_future/models/`` (the triggers with django-pgtrigger) and made by Django's
migrations; the trigger functions here are what those triggers call.

``queries.sql`` is not a database object: it holds the named statements that the
package sends at run time, loaded with :func:`query`.

Migrations run frozen copies
----------------------------

A migration never reads a live file. A migration that creates or changes SQL objects
runs its own copy of their SQL, frozen when the migration was written, in
``django_future/migrations/sql/<migration name>.sql``, read with :func:`frozen`. Editing
a live file therefore never changes what an applied migration did, and the test
``tests/sql/test_schema.py`` proves that a database migrated step by step
has exactly the functions, views, triggers and indexes that the live files and the
models define. To change a function (``claim.sql`` here), a contributor:

1. freezes what the migration's reverse must put back, before editing::

       >>> from django_future.sql import freeze
       >>> freeze("0002_faster_claim.reverse", "claim.sql")

2. edits the live file (functions and views keep ``CREATE OR REPLACE``, so that any
   file but ``types.sql`` can run again over its previous version);
3. freezes the result for the migration::

       >>> freeze("0002_faster_claim", "claim.sql")

4. writes the migration (``makemigrations django_future --empty``), whose operation is
   ``migrations.RunSQL(frozen("0002_faster_claim"),
   reverse_sql=frozen("0002_faster_claim.reverse"))``, and, if the change drops or
   renames an object or changes a function's arguments, the ``DROP`` statements it
   needs, written out in the migration;
5. runs ``tests/sql/test_schema.py``, which fails while the migrations and
   the live files disagree.

:func:`freeze` refuses to overwrite a frozen file: one that is wrong and not yet
released may be deleted by hand and frozen again. Nothing else ever rewrites one.

Prepared statements and versioned names
---------------------------------------

procrastinate versions the functions its workers call by name
(``procrastinate_fetch_job_v2``), so that workers of the previous release keep calling
the definition they were written for while a migration adds the next. We considered
doing so to retire the runner's recovery of outdated prepared statements
(``DEALLOCATE ALL`` in ``ledger/wire.py``'s ``Wire.execute``), and decided against it for now:

- that recovery is for a change of the job *table* (a column dropped or changing type
  while a runner waits), which outdates the runner's prepared ``SELECT <columns> FROM
  django_future_claim(...)`` whatever the function is called; a versioned name does not
  prevent it (``test_a_runner_outlives_a_migration_that_changes_the_job_table``);
- a new body under the same name and arguments (``CREATE OR REPLACE``) needs nothing:
  a prepared statement calls the function by its oid, which ``CREATE OR REPLACE``
  keeps, and runs the new body from its next execution;
- nothing has been released, so no runner of an older release calls these functions.

The rule from the first release on: a migration that changes what a function the
runner calls takes or returns, or what its result means, creates it under a new name
(``django_future_complete_and_claim_v2``) and keeps the old one until a later
release's migration drops it, and ``queries.sql`` moves to the new name.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)

#: The frozen copies that migrations run (see above).
FROZEN_DIR = _HERE.parent / "migrations" / "sql"

#: The live files, in the order in which they are run.
LIVE_FILES: tuple[str, ...] = (
    "hash.sql",
    "types.sql",
    "fold.sql",
    "fold_trigger.sql",
    "replay.sql",
    "append.sql",
    "locks.sql",
    "claim.sql",
    "complete.sql",
    "schedule.sql",
    "bulk.sql",
    "unique.sql",
    "views.sql",
    "periodic.sql",
    "metrics.sql",
)


@cache
def _queries() -> dict[str, str]:
    text = (_HERE / "queries.sql").read_text()
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {
        name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def query(name: str) -> str:
    """The SQL of the named query in ``queries.sql``."""
    return _queries()[name]


def fetch(name: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """The rows of the named query in ``queries.sql``, run on the default connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query(name), params or {})
        return list(cursor.fetchall())


def live_sql(*files: str) -> str:
    """The text of the named live files (all of :data:`LIVE_FILES` by default), in the
    order of :data:`LIVE_FILES`."""
    unknown = set(files) - set(LIVE_FILES)
    if unknown:
        raise ValueError(f"not live SQL files: {sorted(unknown)}; see LIVE_FILES")
    chosen = [name for name in LIVE_FILES if not files or name in files]
    return "\n".join(f"-- ---- {name}\n\n{(_HERE / name).read_text()}" for name in chosen)


def freeze(migration: str, *files: str) -> Path:
    """Write the frozen copy of the named live files (all by default) that migration
    ``migration`` will run, ``FROZEN_DIR/<migration>.sql``; refuse to overwrite one."""
    target = FROZEN_DIR / f"{migration}.sql"
    if target.exists():
        raise FileExistsError(f"{target} exists: a frozen copy is never rewritten")
    header = (
        f"-- Frozen for migration {migration}: the live files of django_future/sql/ below,\n"
        "-- as they stood when it was written. Do not edit: the live files are where the\n"
        "-- current definitions are (see django_future/sql/__init__.py).\n\n"
    )
    target.parent.mkdir(exist_ok=True)
    target.write_text(header + live_sql(*files))
    return target


def frozen(migration: str) -> str:
    """The frozen SQL that migration ``migration`` runs (see :func:`freeze`)."""
    return (FROZEN_DIR / f"{migration}.sql").read_text()
