"""Named SQL, kept in files beside this module and loaded once."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


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
