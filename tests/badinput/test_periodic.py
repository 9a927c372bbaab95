"""Bad input in periodic schedules (DJANGO_FUTURE_PERIODIC and @periodic): refused by the
system check (django_future.E004) and by ``periodic.load()``, naming the schedule, rather
than accepted and then refused by PostgreSQL when a runner makes the schedule's job, or
crashing ``manage.py check`` with an OverflowError."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_future import periodic
from django_future.checks import check_periodic
from django_future.config import ARGS_MAX_DEPTH
from tests.badinput import nested

pytestmark = pytest.mark.unit

ROWS = [
    ({"args": ["\ud800"]}, "args cannot be stored as JSON"),
    ({"kwargs": {"\ud800": 1}}, "kwargs cannot be stored as JSON"),
    ({"kwargs": {"k": ["a\x00"]}}, "kwargs would not come back"),
    ({"args": [nested(ARGS_MAX_DEPTH)]}, f"args nest more than {ARGS_MAX_DEPTH} levels"),
    ({"args": [nested(50_000)]}, "levels deep"),
    ({"args": ["x" * (1024 * 1024)]}, "DJANGO_FUTURE_MAX_ARGS_BYTES allows 1048576"),
    ({"queue": "\udcff"}, "queue must be a name"),
    ({"queue": "q\x00"}, "queue must be a name"),
    ({"queue": "q" * 101}, "queue must be a name"),
    ({"cron": "\x00"}, "invalid cron expression"),
    ({"timezone": "\ud800"}, "unknown timezone"),
    ({"callable": "tests.\ud800"}, "cannot import"),
    ({"priority": 2**64}, "from -100 to 100"),
    ({"max_delay": 10**400}, "too long"),
    ({"max_delay": float("inf")}, "too long"),
    ({"max_delay": float("nan")}, "positive number"),
    ({"max_delay": -1}, "positive number"),
]


@pytest.mark.parametrize(
    ("spec", "message"), ROWS, ids=[f"{next(iter(r[0]))}-{i}" for i, r in enumerate(ROWS)]
)
def test_bad_periodic_schedules_are_check_errors_naming_them(
    spec: dict[str, object], message: str
) -> None:
    given = {"cron": "30 2 * * *", "callable": "tests.handlers.record", **spec}
    with override_settings(DJANGO_FUTURE_PERIODIC={"nightly": given}):
        errors = check_periodic()
        with pytest.raises(ImproperlyConfigured, match="periodic schedule 'nightly'"):
            periodic.load()
    assert [e.id for e in errors] == ["django_future.E004"]
    assert message in errors[0].msg, errors[0].msg
