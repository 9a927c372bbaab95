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

from django_future.models import (
    JobEvent,
    PeriodicChange,
    PeriodicTick,
    RunnerProcess,
    ScheduledJob,
)
from tests.support import db_now, start_runner, wait_until

pytestmark = pytest.mark.slow

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


@pytest.mark.usefixtures("committed_db")
def test_cron_passes_make_the_due_tick_once_and_run_it() -> None:
    """``runscheduledjobs -d -i`` as cron starts it, four at a time, five times: no
    worker and no other process, and each tick still one job. Each pass makes the
    newest due tick (``latest``) and runs it; -d deletes the completed rows, and the
    ticks stay made.

    The first round's passes record the definition, which takes effect from its first
    tick after that (the next whole second): when they all run within that second, as
    they usually do, none is due to them and the round makes no tick. Every later round
    starts more than a second after the one before ended, so a new tick is due to every
    one of its passes: each of those rounds makes it (and a newer one too when its
    passes straddle a second)."""
    schedule = {"every-second": {**SCHEDULE["every-second"], "catch_up": "latest"}}
    env = {"DJANGO_FUTURE_TEST_PERIODIC": json.dumps(schedule)}
    rounds = []
    for _ in range(5):
        start = db_now()
        procs = [start_runner("-d", "-i", **env) for _ in range(4)]
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        rounds.append((start, db_now()))
        time.sleep(1.1)

    since = PeriodicChange.objects.filter(schedule="every-second").latest("id").at
    assert rounds[0][0] <= since <= rounds[0][1], "the first round recorded the definition"
    made = list(PeriodicTick.objects.order_by("tick").values_list("tick", "enqueued_at"))
    newest = since
    for number, (start, end) in enumerate(rounds, 1):
        in_round = [tick for tick, at in made if start <= at <= end]
        due = start.replace(microsecond=0)  # the newest tick when the round started
        # The round's passes offered nothing older than what was due when they started,
        # nothing the database's clock had not reached, nothing already passed over.
        assert all(due <= tick <= end for tick in in_round), (number, in_round)
        assert all(tick > newest for tick in in_round), (number, in_round, newest)
        if due > newest:  # a new tick was due before any of the round's passes ran
            assert in_round, f"round {number} made no tick, though {due} was due"
        newest = max([newest, *in_round])
    assert sum(start <= at <= end for _, at in made for start, end in rounds) == len(made)
    assert len(made) >= 4  # one in each round after the first, at least

    ticks = list(PeriodicTick.objects.values_list("tick", "job_id"))
    assert len({tick for tick, _ in ticks}) == len(ticks)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT data->'periodic'->>'tick') "
            "FROM django_future_jobevent WHERE kind = 'scheduled'"
        )
        assert cursor.fetchone() == (len(ticks), len(ticks))
    jobs = [job for _, job in ticks]
    started = list(
        JobEvent.objects.filter(job_id__in=jobs, kind="started").values_list("job_id", flat=True)
    )
    assert len(started) == len(set(started)), "no tick's job ran twice"
    completed = set(
        JobEvent.objects.filter(job_id__in=jobs, kind="completed").values_list("job_id", flat=True)
    )
    deleted = set(
        JobEvent.objects.filter(job_id__in=jobs, kind="deleted").values_list("job_id", flat=True)
    )
    # Each job ran in some pass and -d deleted its row; a tick that fell due after the
    # last round's passes registered waits for the next pass.
    assert completed == deleted and len(completed) >= len(ticks) - 1
