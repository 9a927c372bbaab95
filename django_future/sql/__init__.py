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
- ``append.sql``: one event appended to one job, folded by the trigger or by its writer
  (and the ``django_future.folded`` setting);
- ``claim.sql``: the runner's claim and a batch's start;
- ``complete.sql``: the runner's completions and its step
  (``django_future_complete_and_claim``);
- ``bulk.sql``: one chunk of ``schedule_jobs()``;
- ``views.sql``: the audit views (docs/audit.md).

:data:`LIVE_FILES` is the order in which they run (a file may use what an earlier one
defines); :func:`live_sql` joins them. The tables, their indexes and the triggers are
declared in ``models.py`` (the triggers with django-pgtrigger) and made by Django's
migrations; the trigger functions here are what those triggers call.

``queries.sql`` is not a database object: it holds the named statements that the
package sends at run time, loaded with :func:`query`.

Until migrations 0001-0010 are squashed, they run the layered files ``NNNN_*.sql``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


#: The live files, in the order in which they are run.
LIVE_FILES: tuple[str, ...] = (
    "hash.sql",
    "types.sql",
    "fold.sql",
    "fold_trigger.sql",
    "replay.sql",
    "append.sql",
    "claim.sql",
    "complete.sql",
    "bulk.sql",
    "views.sql",
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


def live_sql(*files: str) -> str:
    """The text of the named live files (all of :data:`LIVE_FILES` by default), in the
    order of :data:`LIVE_FILES`."""
    unknown = set(files) - set(LIVE_FILES)
    if unknown:
        raise ValueError(f"not live SQL files: {sorted(unknown)}; see LIVE_FILES")
    chosen = [name for name in LIVE_FILES if not files or name in files]
    return "\n".join(f"-- ---- {name}\n\n{(_HERE / name).read_text()}" for name in chosen)


def migration_sql(filename: str) -> str:
    """The text of a SQL file that a migration runs (``sql/NNNN_*.sql``)."""
    return (_HERE / filename).read_text()


def migration_function(filename: str, name: str) -> str:
    """The definition of function ``name`` in a migration's SQL file, as CREATE OR REPLACE.

    For a later migration's reverse, which must put back the definition it replaced
    without running the rest of that file again."""
    text = migration_sql(filename)
    found = re.search(
        rf"^CREATE (?:OR REPLACE )?FUNCTION {name}\(.*?AS (\$\w+\$).*?^\1;$",
        text,
        re.MULTILINE | re.DOTALL,
    )
    if found is None:
        raise LookupError(f"no function {name} in {filename}")
    return re.sub(r"^CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", found.group(0))
