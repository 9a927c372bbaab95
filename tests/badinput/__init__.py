"""Bad input at every public door (issue 26.5): each door gets strings too long, NUL
characters, lone surrogates, huge and deeply nested JSON, negative and overflowing numbers
and time-zone-less times, and must answer with a clear error, write nothing, and leave a
ledger that verifies (the autouse check of tests/conftest.py, after every test).
docs/badinput.md lists every row with the test that proves it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest

from tests.support import counts


@contextlib.contextmanager
def refused(error: type[BaseException], match: str) -> Iterator[None]:
    """The block raises ``error`` with a message matching ``match``, and writes no job
    and no event."""
    before = counts()
    with pytest.raises(error, match=match):
        yield
    assert counts() == before, "a refused call wrote something"


def nested(depth: int) -> object:
    """A value nested ``depth`` lists deep: ``[[...[1]...]]``."""
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


__all__ = ["nested", "re", "refused"]
