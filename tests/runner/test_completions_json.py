"""The completions the runner sends with its next claim, as the step function reads them."""

from __future__ import annotations

import json

import pytest

from django_future.ledger.wire import _completions_json
from django_future.models import ScheduledJob

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "value",
    [None, "", "42", 'say "hi"\\ or not', "line\nbreak\ttab\x00nul", "Zoë, 数字, 🙂", "\ud800"],
)
@pytest.mark.parametrize("seconds", [0.0, 1e-06, 0.123456, 12345.5, 86400.0])
def test_the_text_is_what_json_dumps_writes(value: str | None, seconds: float) -> None:
    done = [(ScheduledJob(id=7, last_seq=2), value, seconds, None)]
    expected = json.dumps([[7, 2, value, seconds]], separators=(",", ":"))
    assert _completions_json(done) == expected
    assert json.loads(_completions_json(done)) == [[7, 2, value, seconds]]


def test_a_batch_of_completions_keeps_its_order() -> None:
    done = [(ScheduledJob(id=i, last_seq=i + 1), str(i), i / 10, None) for i in range(1, 4)]
    assert json.loads(_completions_json(done)) == [[i, i + 1, str(i), i / 10] for i in (1, 2, 3)]


def test_a_result_is_the_fifth_element_only_when_there_is_one() -> None:
    done = [
        (ScheduledJob(id=1, last_seq=2), "{'a': [1, 2]}", 0.5, '{"a":[1,2]}'),
        (ScheduledJob(id=2, last_seq=2), None, 0.5, None),
    ]
    assert json.loads(_completions_json(done)) == [
        [1, 2, "{'a': [1, 2]}", 0.5, {"a": [1, 2]}],
        [2, 2, None, 0.5],
    ]
