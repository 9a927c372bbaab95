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
