"""``scheduledjobs periodic [--json]``: each schedule's next tick, last tick and outcome;
and the admin's read-only pages of ticks and definitions."""

from __future__ import annotations

import datetime as dt
import io
import json
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from django_future import run_jobs
from django_future.periodic import Ticker
from tests.support import db_now

pytestmark = pytest.mark.django_db

SCHEDULES = {
    "every-second": {"cron": "* * * * * *", "callable": "tests.handlers.record", "timezone": "UTC"},
    "nightly": {
        "cron": "30 2 * * *",
        "callable": "tests.handlers.record",
        "timezone": "Europe/Paris",
    },
}


def scheduledjobs(*args: str) -> str:
    out = io.StringIO()
    call_command("scheduledjobs", *args, stdout=out)
    return out.getvalue()


@override_settings(DJANGO_FUTURE_PERIODIC=SCHEDULES)
def test_periodic_lists_next_and_last_tick_and_the_last_outcome() -> None:
    now = db_now()
    ticker = Ticker(runner="cmd:1")
    ticker.start()
    (made,) = ticker.enqueue_due(now + dt.timedelta(seconds=2))
    run_jobs(now=now + dt.timedelta(seconds=2))

    found = {s["schedule"]: s for s in json.loads(scheduledjobs("periodic", "--json"))}
    assert found["every-second"]["last_job"] == made.job_id
    assert found["every-second"]["last_outcome"] == "complete"
    assert dt.datetime.fromisoformat(found["every-second"]["last_tick"]) == made.tick
    assert dt.datetime.fromisoformat(found["every-second"]["next_tick"]) > now
    nightly = found["nightly"]
    assert (nightly["last_tick"], nightly["last_job"], nightly["last_outcome"]) == (
        None,
        None,
        None,
    )
    next_nightly = dt.datetime.fromisoformat(nightly["next_tick"])
    # 02:30 in Paris (03:00 on the day clocks spring forward, when 02:30 does not exist).
    assert next_nightly.astimezone(ZoneInfo("Europe/Paris")).time() in {dt.time(2, 30), dt.time(3)}

    text = scheduledjobs("periodic")
    assert "every-second" in text and "complete" in text and "30 2 * * *" in text


@override_settings(DJANGO_FUTURE_PERIODIC={})
def test_periodic_without_schedules_says_so() -> None:
    assert "no periodic schedules" in scheduledjobs("periodic")
    assert json.loads(scheduledjobs("periodic", "--json")) == []


@override_settings(DJANGO_FUTURE_PERIODIC=SCHEDULES)
def test_the_admin_lists_ticks_and_definitions_read_only(admin_client: Client) -> None:
    now = db_now()
    ticker = Ticker(runner="admin:1")
    ticker.start()
    (made,) = ticker.enqueue_due(now + dt.timedelta(seconds=2))
    page = admin_client.get(reverse("admin:django_future_periodictick_changelist"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "every-second" in body
    assert reverse("admin:django_future_scheduledjob_change", args=[made.job_id]) in body
    changes = admin_client.get(reverse("admin:django_future_periodicchange_changelist"))
    assert changes.status_code == 200 and "nightly" in changes.content.decode()
    add = admin_client.get(reverse("admin:django_future_periodictick_add"))
    assert add.status_code == 403
