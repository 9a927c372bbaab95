"""Unique jobs: what ``unique_key`` and ``unique_while`` may be, checked before anything
is written.

``schedule_job(..., unique_key="sync-user-42")`` makes a job that holds its key: while
it does, another ``schedule_job`` with that key makes nothing and returns the holder,
with ``job.created`` False. ``unique_while`` says how long the new job holds it:

- ``"pending"`` (the default): until it first starts. A debounce: calls made while the
  job waits collapse into it; a call made once it has started gets a job of its own,
  since the work it asks for may come after what the running job has already read.
- ``"active"``: until its last attempt ends (pending, claimed or running, retries
  included). At most one job with the key is queued or running at any time.

The database keeps the promise, not this module: a partial unique index over the jobs
that hold their key, asked with ``ON CONFLICT`` (``sql/unique.sql`` says which jobs hold
it, and why a retry never collides). This module only refuses what that index cannot
mean: a key that is empty, too long, not text, or holds a NUL, and a ``unique_while``
that is neither word. It imports only ``names`` of ours: the scheduler and the task
backend both call it.
"""

from __future__ import annotations

from typing import Any

from django_future.names import check_name

__all__ = ["UNIQUE_KEY_MAX_LENGTH", "UNIQUE_WHILE", "unique_data"]

#: The longest key, in characters (the column is varchar(255), as callable_name).
UNIQUE_KEY_MAX_LENGTH = 255

#: What ``unique_while`` may say: the states in which a job holds its key.
UNIQUE_WHILE = ("pending", "active")


def unique_data(unique_key: object, unique_while: object) -> dict[str, str]:
    """The ``scheduled`` event's entries for this key (none without one), or ValueError.

    A ``unique_while`` other than the default without a key is refused rather than
    ignored: it says the caller meant a unique job and forgot the key.
    """
    if not isinstance(unique_while, str) or unique_while not in UNIQUE_WHILE:
        raise ValueError(
            f"unique_while must be 'pending' (hold the key until the job starts) or 'active' "
            f"(until it finishes), not {unique_while!r}"
        )
    if unique_key is None:
        if unique_while != "pending":
            raise ValueError(f"unique_while={unique_while!r} needs a unique_key")
        return {}
    key = check_name(
        unique_key,
        "unique_key",
        UNIQUE_KEY_MAX_LENGTH,
        example="sync-user-42",
        none_means="a job without a key",
    )
    data: dict[str, Any] = {"unique_key": key, "unique_while": unique_while}
    return data
