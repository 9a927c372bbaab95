"""Eight runner processes on one schedule that ticks every second: each tick gives
exactly one job, with no gap, whichever runner gets there first.

cronsim takes seconds as a sixth (first) field, so the schedule ticks for real every
second: no clock is faked. The runners are workers, the mode that competes hardest
(each sleeps until the next tick and wakes with the others); about 30 seconds keep the
test short on every Python and Django of CI.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import signal
import time

import pytest
from django.db import connection

from django_future.models import JobEvent, PeriodicTick, RunnerProcess, ScheduledJob
from tests.support import start_runner, wait_until

RUNNERS = 8
SECONDS = 30
SCHEDULE = {
    "every-second": {
        "cron": "* * * * * *",
        "callable": "tests.handlers.returns_none",
        "catch_up": "all",  # a missed tick would be made late, not skipped: gaps would show
        "timezone": "UTC",
    }
}


@pytest.mark.usefixtures("committed_db")
def test_eight_runners_make_exactly_one_job_per_tick() -> None:
    env = {"DJANGO_FUTURE_TEST_PERIODIC": json.dumps(SCHEDULE)}
    procs = [start_runner("--worker", "--ignore-errors", **env) for _ in range(RUNNERS)]
    wait_until(
        lambda: RunnerProcess.objects.filter(stopped_at__isnull=True).count() == RUNNERS,
        timeout=60,
        what="eight runners registered",
    )
    time.sleep(SECONDS)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err

    ticks = list(PeriodicTick.objects.order_by("tick").values_list("tick", "job_id", "runner"))
    assert len(ticks) >= SECONDS * 2 // 3, f"only {len(ticks)} ticks in {SECONDS} s"
    times = [tick for tick, _, _ in ticks]
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert gaps == {dt.timedelta(seconds=1)}, "each second once, none missing"
    assert len({runner for _, _, runner in ticks}) >= 2, "the runners competed"

    # The ledger agrees: one scheduled event per tick, naming it, and no other job.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT data->'periodic'->>'schedule', (data->'periodic'->>'tick')::timestamptz, "
            "count(*) FROM django_future_jobevent WHERE kind = 'scheduled' "
            "GROUP BY 1, 2 ORDER BY 2"
        )
        scheduled = cursor.fetchall()
    assert scheduled == [("every-second", tick, 1) for tick in times]
    assert {job for _, job, _ in ticks} == set(
        JobEvent.objects.filter(kind="scheduled").values_list("job_id", flat=True)
    )
    # Each job started at most once, and all but the last few ran.
    started = JobEvent.objects.filter(kind="started").values_list("job_id", flat=True)
    assert len(started) == len(set(started))
    complete = ScheduledJob.objects.filter(status="complete").count()
    assert complete >= len(ticks) - 3
