"""A job's retry policy as it is given: checked when the job is scheduled, copied by
reschedule, and the delays it yields. How the runner applies it is in
tests/runner/test_retries.py."""

from __future__ import annotations

import datetime as dt

import pytest

from django_future import schedule_job
from django_future.scheduler import backoff
from tests.support import counts


@pytest.mark.unit
def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [backoff(n, dt.timedelta(seconds=30), dt.timedelta(minutes=5)) for n in range(1, 7)]
    assert [d.total_seconds() for d in delays] == [30, 60, 120, 240, 300, 300]
    assert backoff(10_000, dt.timedelta(seconds=1), dt.timedelta(hours=1)) == dt.timedelta(hours=1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retries": -1}, "retries must be a whole number"),
        ({"retries": True}, "retries must be a whole number"),
        ({"retries": 1.5}, "retries must be a whole number"),
        ({"retry_delay": "5s"}, "need retries=1 or more"),
        ({"retries": 1, "retry_delay": "soon"}, "retry_delay"),
        ({"retries": 1, "retry_delay": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)}, "not a duration"),
        ({"retries": 1, "retry_delay": "1h", "retry_max_delay": "1m"}, "shorter than"),
        ({"atomic": "yes"}, "atomic must be True or False"),
    ],
)
def test_bad_policies_are_refused_and_write_nothing(
    kwargs: dict[str, object], message: str
) -> None:
    before = counts()
    with pytest.raises(ValueError, match=message):
        schedule_job("0s", "tests.handlers.record", **kwargs)  # type: ignore[arg-type]
    assert counts() == before


@pytest.mark.django_db
def test_reschedule_copies_the_policy() -> None:
    job = schedule_job("1d", "tests.handlers.record", retries=2, retry_delay="5m", atomic=True)
    copy = job.reschedule("2d")
    assert (copy.max_attempts, copy.retry_delay, copy.atomic) == (
        3,
        dt.timedelta(minutes=5),
        True,
    )
