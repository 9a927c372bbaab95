"""Periodic ticks made into jobs on a real PostgreSQL: one job per tick, whoever offers
it; the scheduled event names the schedule and the tick; catch-up after downtime;
changes and removals recorded; and what a claim cycle costs."""

from __future__ import annotations

import datetime as dt

import pgtrigger
import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_future import ledger
from django_future.models import JobEvent, PeriodicChange, PeriodicTick, ScheduledJob
from django_future.periodic import Ticker
from django_future.runner import Runner
from tests.support import db_now

pytestmark = pytest.mark.django_db

UTC = dt.UTC
T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def settings_for(**schedules: dict[str, object]) -> override_settings:
    full = {
        name: {"callable": "tests.handlers.record", "timezone": "UTC", **spec}
        for name, spec in schedules.items()
    }
    return override_settings(DJANGO_FUTURE_PERIODIC=full)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def started_ticker(now: dt.datetime, runner: str = "test:1") -> Ticker:
    ticker = Ticker(runner=runner)
    ticker.start(now)
    return ticker


def backdate_definitions(to: dt.datetime) -> None:
    """The definitions were recorded when the database's clock said so; the tests walk a
    clock of their own from T0, so they move that record to T0, past the table's
    append-only trigger with pgtrigger.ignore, as a test may."""
    with pgtrigger.ignore("django_future.PeriodicChange:periodic_changes_append_only"):
        PeriodicChange.objects.update(at=to)


def ticker_at(now: dt.datetime, runner: str = "test:1", since: dt.datetime = T0) -> Ticker:
    ticker = started_ticker(now, runner)
    backdate_definitions(since)
    ticker.start(now)  # learn the back-dated since
    return ticker


def test_each_tick_is_one_job_whoever_offers_it_and_its_event_says_which() -> None:
    with settings_for(minutely={"cron": "* * * * *", "args": [7]}):
        a, b = ticker_at(at(0), "a:1"), ticker_at(at(0), "b:2")
        made = a.enqueue_due(at(1))
        assert [(m.schedule, m.tick) for m in made] == [("minutely", at(1))]
        assert b.enqueue_due(at(1)) == []  # the same tick: nothing more
        assert b.enqueue_due(at(2.5))[0].tick == at(2)
        assert a.enqueue_due(at(2.5)) == []
    ticks = list(PeriodicTick.objects.order_by("tick").values_list("tick", "job_id", "runner"))
    assert [(t, r) for t, _, r in ticks] == [(at(1), "a:1"), (at(2), "b:2")]
    job = ScheduledJob.objects.get(pk=ticks[0][1])
    assert (job.callable_name, job.args, job.time_slot_start) == (
        "tests.handlers.record",
        [7],
        at(1),
    )
    assert job.time_slot_end == at(1) + dt.timedelta(days=1)  # expires after max_delay
    scheduled = JobEvent.objects.get(job_id=job.pk, kind="scheduled")
    assert scheduled.data["periodic"]["schedule"] == "minutely"
    assert dt.datetime.fromisoformat(scheduled.data["periodic"]["tick"]) == at(1)
    assert scheduled.runner == "a:1"
    assert ScheduledJob.objects.count() == 2 and ledger.verify() == []


def test_the_database_refuses_a_second_job_for_a_tick_and_an_older_tick() -> None:
    """Even a runner that offers a tick again (it knew less) makes nothing: the unique
    constraint and the newest-tick guard of sql/periodic.sql."""
    with settings_for(minutely={"cron": "* * * * *"}):
        ticker_at(at(0)).enqueue_due(at(3))
        offer = {
            "schedule": "minutely",
            "hash": "x",
            "expires": 60.0,
            "data": {"callable_name": "tests.handlers.record"},
        }
        for tick in (at(3), at(1)):
            made, _ = ledger.ticks.enqueue([{**offer, "tick": tick}], now=at(5), runner="late:1")
            assert made == []
        made, _ = ledger.ticks.enqueue([{**offer, "tick": at(6)}], now=at(5), runner="early:1")
        assert made == []  # not due yet by the clock given
    assert PeriodicTick.objects.count() == ScheduledJob.objects.count() == 1


def test_a_tick_stays_made_after_its_job_row_is_deleted() -> None:
    with settings_for(minutely={"cron": "* * * * *"}):
        ticker_at(at(0)).enqueue_due(at(1))
        Runner(now=at(1.5), delete_completed=True).run()
        assert ScheduledJob.objects.count() == 0  # -d removed the completed job's row
        assert ticker_at(at(0), "other:1").enqueue_due(at(1.5)) == []
    (row,) = _view_rows()
    assert row["outcome"] == "complete" and row["lateness"] is not None


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [("latest", [at(25)]), ("all", [at(m) for m in range(5, 30, 5)]), ("none", [])],
)
def test_catch_up_after_downtime(catch_up: str, expected: list[dt.datetime]) -> None:
    """Every runner down from T0 to T0 + 27 minutes: five ticks missed, the newest of
    them two minutes late."""
    with settings_for(five={"cron": "*/5 * * * *", "catch_up": catch_up}):
        made = ticker_at(at(0), "back:1").enqueue_due(at(27))
    assert [m.tick for m in made] == expected


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Spring forward in Paris (02:00 -> 03:00): 02:30 does not exist; once, at 03:00.
        ("2026-03-28T12:00+00:00", ["2026-03-29T01:00+00:00", "2026-03-30T00:30+00:00"]),
        # Fall back (03:00 -> 02:00): 02:30 happens twice; once, at the first.
        ("2026-10-24T12:00+00:00", ["2026-10-25T00:30+00:00", "2026-10-26T01:30+00:00"]),
    ],
)
def test_a_daily_0230_makes_one_job_on_dst_days(start: str, expected: list[str]) -> None:
    """Two runners walk the clock through the DST day and the next, five minutes at a
    time, offering what they find due: one job per day."""
    since = dt.datetime.fromisoformat(start)
    with settings_for(nightly={"cron": "30 2 * * *", "timezone": "Europe/Paris"}):
        a = ticker_at(since, "a:1", since=since)
        b = ticker_at(since, "b:1", since=since)
        now = since
        while now < since + dt.timedelta(days=2):
            now += dt.timedelta(minutes=5)
            a.enqueue_due(now)
            b.enqueue_due(now)
    made = list(PeriodicTick.objects.order_by("tick").values_list("tick", flat=True))
    assert made == [dt.datetime.fromisoformat(t) for t in expected]
    assert ScheduledJob.objects.count() == 2


def test_a_changed_schedule_takes_effect_from_its_next_tick_and_is_recorded() -> None:
    with settings_for(job={"cron": "0 * * * *"}):
        ticker_at(at(0)).enqueue_due(at(60))
    with settings_for(job={"cron": "30 * * * *"}):
        changed = Ticker(runner="deploy:2")
        changed.start()
        assert changed.enqueue_due() == []  # a definition recorded now ticks from now
    with settings_for():
        Ticker(runner="deploy:3").start()
    history = list(
        PeriodicChange.objects.order_by("id").values_list("schedule", "hash", "definition")
    )
    assert [h[0] for h in history] == ["job", "job", "job"]
    assert history[0][2]["cron"] == "0 * * * *" and history[1][2]["cron"] == "30 * * * *"
    assert history[2][1:] == ("", None)  # removed
    (tick,) = PeriodicTick.objects.all()
    assert tick.definition == history[0][1]


def test_a_new_schedule_makes_no_job_for_ticks_before_it_was_defined() -> None:
    with settings_for(minutely={"cron": "* * * * * *"}):
        ticker = Ticker(runner="new:1")
        ticker.start()
        assert ticker.enqueue_due(db_now() - dt.timedelta(seconds=5)) == []


def test_a_claim_cycle_costs_no_query_until_a_tick_is_due_then_one() -> None:
    many = {f"s{i}": {"cron": "* * * * *"} for i in range(20)}
    with settings_for(**many):
        ticker = ticker_at(at(0))
        with CaptureQueriesContext(connection) as nothing_due:
            for second in range(1, 60):
                assert ticker.enqueue_due(at(second / 60)) == []
        with CaptureQueriesContext(connection) as due:
            made = ticker.enqueue_due(at(1))
    assert len(nothing_due) == 0
    assert len(due) == 1 and len(made) == 20
    assert ticker.seconds_to_next(at(1.5)) == 30.0


def test_a_runner_pass_makes_and_runs_the_due_tick() -> None:
    with settings_for(minutely={"cron": "* * * * *"}):
        ticker_at(at(0))
        report = Runner(now=at(1.25)).run()
    assert report.ran == 1
    (row,) = _view_rows()
    assert row["tick"] == at(1) and row["outcome"] == "complete"
    assert row["lateness"] >= dt.timedelta(0)


def _view_rows() -> list[dict[str, object]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM django_future_periodic_ticks ORDER BY tick")
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
