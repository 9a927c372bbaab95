"""Property tests (Hypothesis) of the two parsers every scheduled job goes through: the
duration parser of schedule_job's times ('5d', '2h', '1h30m') and the argument encoder
(the scheduler's check of args and kwargs, then json.dumps, as the job is sent). For any
input each either gives a value that round-trips, or raises a ValueError or TypeError
with a message; never another exception. Few examples and no deadline: CI time stays
small (about a second each)."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from django_future.scheduler import (
    ARGS_MAX_DEPTH,
    LONGEST_DURATION,
    _check_arguments,
    parse_duration,
)

pytestmark = pytest.mark.unit

FEW = settings(max_examples=200, deadline=None)

UNITS = ("w", "d", "h", "m", "s")
SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


@FEW
@given(
    st.text(
        alphabet=st.sampled_from("0123456789wdhms \t\x00\ud800é-+.") | st.characters(), max_size=40
    )
)
@example("99999999999d")
@example("9" * 5000 + "s")
@example("")
@example("\ud800")
def test_any_text_is_a_duration_or_a_value_error(text: str) -> None:
    try:
        duration = parse_duration(text)
    except ValueError as exc:
        assert str(exc)  # a message, naming the text
        return
    assert dt.timedelta(0) <= duration <= LONGEST_DURATION


@FEW
@given(st.dictionaries(st.sampled_from(UNITS), st.integers(0, 10**16), min_size=1), st.booleans())
def test_written_durations_round_trip(parts: dict[str, int], spaced: bool) -> None:
    """What a caller writes, largest unit first, parses to exactly that many seconds,
    or (beyond 1000 years) is refused as too long."""
    glue = " " if spaced else ""
    text = glue.join(f"{parts[u]}{u}" for u in UNITS if u in parts)
    seconds = sum(n * SECONDS[u] for u, n in parts.items())
    if seconds > LONGEST_DURATION.total_seconds():
        with pytest.raises(ValueError, match="too long a duration"):
            parse_duration(text)
    else:
        assert parse_duration(text) == dt.timedelta(seconds=seconds)


# Values a caller might pass as arguments: JSON's and some it cannot carry.
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included
    | st.text()  # NUL and lone surrogates included
    | st.binary(max_size=4)
    | st.datetimes()
    | st.integers(4295, 4305).map(lambda digits: -(10**digits))  # past json.dumps's limit
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4)
        | st.frozensets(st.integers(), max_size=2)
    ),
    max_leaves=20,
)


def _json_like(value: Any) -> Any:
    """``value`` as a JSON round trip would give it back: tuples as lists."""
    if isinstance(value, list | tuple):
        return [_json_like(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_like(v) for k, v in value.items()}
    return value


@FEW
@given(st.lists(values, max_size=4), st.dictionaries(st.text(max_size=8), values, max_size=4))
def test_arguments_round_trip_or_are_refused_with_a_message(
    args: list[Any], kwargs: dict[str, Any]
) -> None:
    try:
        checked_args, checked_kwargs = _check_arguments(args, kwargs)
        text = json.dumps({"args": checked_args, "kwargs": checked_kwargs})
    except (TypeError, ValueError) as exc:
        assert str(exc).startswith(("args", "kwargs"))  # names where the bad value is
        return
    # What is accepted is what comes back from the database: PostgreSQL's jsonb takes
    # the text (no NUL escape, valid UTF-8), and a JSON round trip gives the same values.
    assert "\\u0000" not in text
    text.encode("utf-8")
    back = json.loads(text)
    assert back == {"args": _json_like(args), "kwargs": _json_like(kwargs)}
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(back))


@FEW
@given(st.integers(1, ARGS_MAX_DEPTH * 3))
def test_nesting_is_refused_past_the_limit_only(depth: int) -> None:
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    # args itself is the first level.
    if depth < ARGS_MAX_DEPTH:
        assert _check_arguments([value], {})[0] == [value]
    else:
        with pytest.raises(ValueError, match=f"at most {ARGS_MAX_DEPTH} levels"):
            _check_arguments([value], {})


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    return [value]
