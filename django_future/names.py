"""The one check of a name that a caller gives a job: a lock (``schedule_job(lock=...)``)
or a unique key (``unique_key=...``).

A name is a non-empty string of at most so many characters, that PostgreSQL can store
as text (no NUL, no lone surrogate), compared as written. Anything else is a
``ValueError`` that names the argument, before anything is written. It imports nothing
of the package: ``locks`` and ``unique`` use it.
"""

from __future__ import annotations

__all__ = ["check_name"]


def check_name(
    value: object, what: str, max_length: int, *, example: str, none_means: str
) -> str | None:
    """``value`` if it is a usable name, None if it is None; else ``ValueError``.

    ``what`` is the argument's name in the message, ``example`` a good value and
    ``none_means`` what None asks for ("no lock")."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(
            f"{what} must be a non-empty string or None ({none_means}), such as "
            f"{example!r}; not {type(value).__name__} {value!r}"
        )
    if not value:
        raise ValueError(
            f"{what} is empty: give a name such as {example!r}, or None ({none_means})"
        )
    if len(value) > max_length:
        raise ValueError(
            f"{what} {value[:20]!r}... is {len(value)} characters long; "
            f"a {what} has at most {max_length}"
        )
    if "\x00" in value:
        raise ValueError(
            f"{what} {value!r} contains a NUL character, which PostgreSQL cannot store"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} {value!r} is not valid Unicode (it holds a lone surrogate)"
        ) from None
    return value
