"""manage.py scheduledjobs: status, show, verify, rebuild, prune; tables and --json."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from io import StringIO
from zoneinfo import ZoneInfo

import pgtrigger
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import ProgrammingError
from django.test import override_settings

from django_future import run_jobs, schedule_job
from django_future.models import PROJECTION_GUARD, JobEvent, PruneRecord, ScheduledJob
from tests.support import db_now, kinds

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("scheduledjobs", *args, stdout=out)
    return out.getvalue()


def as_json(*args: str) -> object:
    return json.loads(run(*args, "--json"))


def test_status_counts_lag_and_runners() -> None:
    due = schedule_job(db_now() - dt.timedelta(minutes=5), "tests.handlers.record")
    schedule_job("1h", "tests.handlers.record")
    schedule_job("0s", "tests.handlers.returns_none")
    due.cancel(by="test", reason="keep it out of this run")
    run_jobs()
    waiting = schedule_job(db_now() - dt.timedelta(minutes=2), "tests.handlers.record")
    report = as_json("status")
    assert report["counts"] == {"cancelled": 1, "complete": 1, "scheduled": 2}
    assert report["total"] == 4
    assert report["oldest_due"]["job_id"] == waiting.pk
    assert 119 < report["oldest_due"]["lag_s"] < 180
    text = run("status")
    assert "jobs: 4" in text and "scheduled  2" in text
    assert f"oldest due job: {waiting.pk} (tests.handlers.record), due " in text


def test_status_shows_jobs_in_hand_per_runner() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_future_runnerprocess (hostname, pid, identity, lease_expires_at)"
            " VALUES ('h', 1, 'h:1', now() + interval '30 seconds') RETURNING id"
        )
        (runner_id,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, runner, data)"
            " VALUES (%s, 2, 'started', 'h:1', jsonb_build_object('runner_id', %s::bigint))",
            [job.pk, runner_id],
        )
    (runner,) = as_json("status")["runners"]
    assert (runner["runner"], runner["running"], runner["claimed"], runner["stopped"]) == (
        "h:1",
        1,
        0,
        False,
    )
    assert 0 <= runner["last_heartbeat_age_s"] < 5
    assert 25 < runner["lease_left_s"] <= 30
    assert "alive" not in runner  # the ledger knows heartbeats and leases, not life
    text = run("status")
    assert "runner  running  claimed  last heartbeat  its jobs recoverable" in text
    assert re.search(r"h:1 +1 +0 +\d+\.\d s ago +in \d+\.\d s unless renewed", text)
    # Silent since: its lease runs out, and status says its jobs are recoverable now.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE django_future_runnerprocess SET heartbeat_at = now() - interval '40 seconds',"
            " lease_expires_at = now() - interval '10 seconds'"
        )
    (runner,) = as_json("status")["runners"]
    assert 39 < runner["last_heartbeat_age_s"] < 45 and -15 < runner["lease_left_s"] < -9
    assert re.search(r"4\d\.\d s ago +now \(lease ran out 1\d\.\d s ago\)", run("status"))
    # Leave it finished for the after-test check: its runner "dies" and it is recovered.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE django_future_runnerprocess SET stopped_at = now()")
    assert "now (it stopped)" in run("status")
    run_jobs()
    assert ScheduledJob.objects.get(pk=job.pk).status == "failed"


def test_status_as_of_a_past_instant() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    run_jobs()
    started = JobEvent.objects.get(job_id=job.pk, kind="started").at
    report = as_json("status", "--as-of", started.isoformat())
    assert report["counts"] == {"running": 1}
    assert report["runners"] == []
    assert as_json("status")["counts"] == {"complete": 1}
    with pytest.raises(CommandError, match="is not a date and time"):
        run("status", "--as-of", "last tuesday")


def test_show_prints_a_timeline() -> None:
    job = schedule_job("0s", "tests.handlers.boom", args=["card declined"], retries=1)
    run_jobs()
    text = run("show", str(job.pk))
    assert "seq  kind" in text
    for kind in ("scheduled", "started", "failed", "retry"):
        assert kind in text
    assert "ValueError: card declined" in text and "attempt 2 of 2 due" in text
    events = as_json("show", str(job.pk))["events"]  # type: ignore[index]
    assert [e["kind"] for e in events] == ["scheduled", "started", "failed", "retry"]
    assert all(len(e["hash"]) == 64 for e in events)
    with pytest.raises(CommandError, match="no events for job 99999"):
        run("show", "99999")


def test_show_prints_the_queue_and_priority() -> None:
    job = schedule_job("1h", "tests.handlers.record", queue="emails", priority=-3)
    text = run("show", str(job.pk))
    assert f"job {job.pk}: queue emails, priority -3" in text
    assert "in queue emails, priority -3" in text  # the scheduled event's detail
    shown = as_json("show", str(job.pk))
    assert (shown["queue"], shown["priority"]) == ("emails", -3)  # type: ignore[index]
    plain = schedule_job("1h", "tests.handlers.record")
    assert f"job {plain.pk}: queue default, priority 0" in run("show", str(plain.pk))


def test_show_prints_the_unique_key_and_while_it_is_held() -> None:
    job = schedule_job("1h", "tests.handlers.record", unique_key="sync-user-42")
    text = run("show", str(job.pk))
    assert f"job {job.pk}: queue default, priority 0, unique key 'sync-user-42' while pending" in (
        text
    )
    assert "priority 0, unique key 'sync-user-42'" in text  # the scheduled event's detail
    shown = as_json("show", str(job.pk))
    assert (shown["unique_key"], shown["unique_while"]) == ("sync-user-42", "pending")  # type: ignore[index]
    plain = schedule_job("1h", "tests.handlers.record")
    assert "unique key" not in run("show", str(plain.pk))
    assert as_json("show", str(plain.pk))["unique_key"] is None  # type: ignore[index]


def test_show_prints_the_lock() -> None:
    job = schedule_job("1h", "tests.handlers.record", lock="user-42")
    text = run("show", str(job.pk))
    assert f"job {job.pk}: queue default, priority 0, lock user-42" in text
    assert "priority 0, lock user-42" in text.split("\n", 1)[1]  # the scheduled event's detail
    assert as_json("show", str(job.pk))["lock"] == "user-42"  # type: ignore[index]
    plain = schedule_job("1h", "tests.handlers.record")
    assert "lock" not in run("show", str(plain.pk))
    assert as_json("show", str(plain.pk))["lock"] is None  # type: ignore[index]


@override_settings(TIME_ZONE="America/New_York")
def test_every_command_shows_and_reads_times_in_time_zone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = schedule_job("0s", "tests.handlers.boom", retries=1, retry_delay="1h")
    run_jobs(ignore_errors=True)
    events = JobEvent.objects.filter(job_id=job.pk).order_by("seq")
    new_york = ZoneInfo("America/New_York")
    shown = as_json("show", str(job.pk))["events"]  # type: ignore[index]
    for event, printed in zip(events, shown, strict=True):
        assert printed["at"] == event.at.astimezone(new_york).isoformat()
        assert printed["at"].endswith(("-05:00", "-04:00"))
    text = run("show", str(job.pk))
    assert events[0].at.astimezone(new_york).isoformat() in text
    due = dt.datetime.fromisoformat(events[3].data["due"]).astimezone(new_york)
    assert f"attempt 2 of 2 due {due.isoformat()}" in text
    # A time typed without an offset is read in the same zone, and printed back in it.
    started = events[1].at.astimezone(new_york)
    typed = started.replace(tzinfo=None).isoformat()
    report = as_json("status", "--as-of", typed)
    assert report["as_of"] == started.isoformat()
    assert report["counts"] == {"running": 1}
    for action in ("status", "show"):
        with pytest.raises(SystemExit):
            call_command("scheduledjobs", action, "--help")
        assert "current time zone (the TIME_ZONE setting)" in " ".join(
            capsys.readouterr().out.split()
        )
    job.cancel(by="test", reason="done looking")


def test_verify_passes_then_fails_and_rebuild_repairs() -> None:
    job = schedule_job("0s", "tests.handlers.record")
    run_jobs()
    assert "ok: every job row is the fold of its events" in run("verify")
    assert as_json("verify") == {"problems": []}
    with pgtrigger.ignore(PROJECTION_GUARD), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE django_future_scheduledjob SET status = 'failed' WHERE id = %s", [job.pk]
        )
    with pytest.raises(CommandError, match="1 problem") as info:
        run("verify")
    assert info.value.returncode == 1
    assert "rebuilt the job table from the ledger; 1 job(s) differed" in run("rebuild")
    assert ScheduledJob.objects.get(pk=job.pk).status == "complete"


def test_prune_removes_old_finished_jobs_and_records_it() -> None:
    old_done = schedule_job("0s", "tests.handlers.record")
    old_failed = schedule_job("0s", "tests.handlers.boom")
    run_jobs(ignore_errors=True, delete_completed=True)
    pending = schedule_job("0s", "tests.handlers.boom", retries=1, retry_delay="1h")
    sleeping = schedule_job("1h", "tests.handlers.record")  # old events, but not finished
    run_jobs(ignore_errors=True)  # `pending` fails once and waits for its retry
    time.sleep(1.1)
    recent = schedule_job("0s", "tests.handlers.record")
    run_jobs()

    dry = as_json("prune", "--older-than", "1s", "--dry-run")
    assert dry["job_ids"] == [old_done.pk, old_failed.pk] and dry["record_id"] is None  # type: ignore[index]
    assert JobEvent.objects.filter(job_id=old_done.pk).exists()

    text = run("prune", "--older-than", "1s", "--by", "ops@example.com")
    assert "removed 2 finished job(s) and their 7 event(s)" in text
    assert not JobEvent.objects.filter(job_id__in=[old_done.pk, old_failed.pk]).exists()
    assert not ScheduledJob.objects.filter(pk=old_failed.pk).exists()
    assert kinds(pending) == ["scheduled", "started", "failed", "retry"]  # not finished
    assert kinds(sleeping) == ["scheduled"]
    assert kinds(recent) == ["scheduled", "started", "completed"]  # newer than the cut
    record = PruneRecord.objects.get()
    assert (record.by, record.jobs, record.events, record.job_ids) == (
        "ops@example.com",
        2,
        7,
        [old_done.pk, old_failed.pk],
    )
    assert len(record.heads_digest) == 64
    with (
        pytest.raises(ProgrammingError, match="the prune log is append-only"),
        transaction.atomic(),
    ):
        PruneRecord.objects.update(jobs=0)
    with pytest.raises(CommandError, match="is not a duration"):
        run("prune", "--older-than", "soon")
