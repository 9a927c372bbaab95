"""When a failed job runs again: the backoff between attempts.

The scheduler documents it and the runner applies it, so it sits below both and
imports nothing else of the package.
"""

from __future__ import annotations

import datetime as dt

__all__ = ["backoff"]


def backoff(attempt: int, delay: dt.timedelta, cap: dt.timedelta) -> dt.timedelta:
    """Delay before retrying after failed attempt number ``attempt`` (1, 2, ...).

    Doubles each time from ``delay``, never more than ``cap``: with 30 s and
    1 h, the retries come 30 s, 1 min, 2 min, 4 min... 1 h, 1 h after each failure.
    """
    factor = 2 ** min(attempt - 1, 62)
    try:
        return min(delay * factor, cap)
    except OverflowError:
        return cap
