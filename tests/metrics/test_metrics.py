"""The metrics: values against known jobs, parsed with prometheus_client's own parser;
the fold over concurrent writers; the command."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from django_future import audit, run_jobs, schedule_job
from django_future.models import JobEvent, MetricBucket, MetricEvents, MetricGap, MetricMark
from tests.support import db_now, subprocess_env


def scrape() -> str:
    out = StringIO()
    call_command("scheduledjobs", "metrics", stdout=out)
    return out.getvalue()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the text, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


@pytest.mark.django_db
def test_values_match_the_jobs() -> None:
    now = db_now()
    # ran: waited about 90 s, completes; waited about 0 s, fails (no retries)
    schedule_job(now - dt.timedelta(seconds=90), "tests.handlers.record")
    schedule_job(now, "tests.handlers.boom", queue="mail")
    run_jobs(ignore_errors=True)
    # left waiting: due 10 minutes ago in mail, due in an hour in default
    waiting = schedule_job(now - dt.timedelta(minutes=10), "tests.handlers.record", queue="mail")
    schedule_job("1h", "tests.handlers.record")
    found = samples(scrape())

    assert value(found, "django_future_jobs", state="scheduled", queue="mail") == 1
    assert value(found, "django_future_jobs", state="scheduled", queue="default") == 1
    assert ("django_future_jobs", (("queue", "default"), ("state", "running"))) not in found
    assert value(found, "django_future_due_jobs", queue="mail") == 1
    assert value(found, "django_future_due_jobs", queue="default") == 0
    lag = value(found, "django_future_queue_lag_seconds", queue="mail")
    assert 600 <= lag < 660
    assert value(found, "django_future_queue_lag_seconds", queue="default") == 0

    expected = {"scheduled": 4, "started": 2, "completed": 1, "failed": 1}
    for kind, count in expected.items():
        assert value(found, "django_future_events_total", kind=kind) == count
    assert {labels for name, labels in found if name == "django_future_events_total"} == {
        (("kind", k),) for k in expected
    }

    wait = "django_future_queue_wait_seconds"
    assert value(found, f"{wait}_count") == 2
    assert value(found, f"{wait}_bucket", le="60.0") == 1  # the job due now
    assert value(found, f"{wait}_bucket", le="120.0") == 2  # and the one due 90 s before
    assert 90 <= value(found, f"{wait}_sum") < 120
    duration = "django_future_job_duration_seconds"
    assert value(found, f"{duration}_count") == 2
    assert value(found, f"{duration}_bucket", le="+Inf") == 2
    assert 0 <= value(found, f"{duration}_sum") < 5
    assert value(found, "django_future_metrics_unfolded_events") == 0
    assert value(found, "django_future_runners", state="alive") == 0
    assert waiting.pk  # the lag above is this job's


@pytest.mark.django_db
def test_each_event_is_counted_once_over_scrapes() -> None:
    schedule_job("1h", "tests.handlers.record")
    first = samples(scrape())
    assert value(first, "django_future_events_total", kind="scheduled") == 1
    assert samples(scrape()) == first  # nothing new: nothing added
    schedule_job("1h", "tests.handlers.record")
    schedule_job("2h", "tests.handlers.record")
    third = samples(scrape())
    assert value(third, "django_future_events_total", kind="scheduled") == 3
    assert MetricMark.objects.get().upto == JobEvent.objects.latest("id").pk


@pytest.mark.django_db
def test_runners_alive_and_lost_come_from_their_leases() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_future_runnerprocess (hostname, pid, identity, lease_expires_at,"
            " stopped_at) VALUES"
            " ('h', 1, 'h:1', now() + interval '30 seconds', NULL),"
            " ('h', 2, 'h:2', now() + interval '30 seconds', NULL),"
            " ('h', 3, 'h:3', now() - interval '5 seconds', NULL),"
            " ('h', 4, 'h:4', now() + interval '30 seconds', now())"
        )
    found = samples(scrape())
    assert value(found, "django_future_runners", state="alive") == 2
    assert value(found, "django_future_runners", state="lost") == 1


@pytest.fixture
def clean_metrics(committed_db: None) -> Iterator[None]:
    yield
    for model in (MetricEvents, MetricBucket, MetricMark, MetricGap):
        model.objects.all().delete()


def test_an_event_committed_late_is_counted_when_it_appears(clean_metrics: None) -> None:
    """Ids are handed out in one order and committed in another: an event whose
    transaction is still open when a scrape passes its id is counted by a later scrape,
    once, and never lost."""
    with psycopg.connect(subprocess_env()["DATABASE_URL"]) as slow:
        # an open transaction appends an event (takes an id) and does not commit yet
        (late,) = slow.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, data) VALUES "
            "(nextval(pg_get_serial_sequence('django_future_scheduledjob', 'id')), 1,"
            " 'scheduled', jsonb_build_object('callable_name', 'tests.handlers.record',"
            " 'args', '[]'::jsonb, 'kwargs', '{}'::jsonb, 'time_slot_start', now()))"
            " RETURNING id"
        ).fetchone()
        schedule_job("1h", "tests.handlers.record")  # a later id, committed first
        before = samples(scrape())
        assert value(before, "django_future_events_total", kind="scheduled") == 1
        assert MetricGap.objects.filter(lo__lte=late, hi__gt=late).count() == 1
        slow.commit()
    after = samples(scrape())
    assert value(after, "django_future_events_total", kind="scheduled") == 2
    assert MetricGap.objects.filter(lo__lte=late, hi__gt=late).count() == 0
    again = samples(scrape())
    assert value(again, "django_future_events_total", kind="scheduled") == 2


def test_a_rolled_back_id_is_forgotten_once_no_older_transaction_runs(
    clean_metrics: None,
) -> None:
    schedule_job("1h", "tests.handlers.record")
    scrape()
    with psycopg.connect(subprocess_env()["DATABASE_URL"]) as gone:
        (lost,) = gone.execute(
            "SELECT nextval(pg_get_serial_sequence('django_future_jobevent', 'id'))"
        ).fetchone()
        gone.rollback()
    schedule_job("1h", "tests.handlers.record")
    scrape()
    gap = MetricGap.objects.get(lo__lte=lost, hi__gt=lost)
    # noted a minute ago (the wait that also covers an id taken just before its
    # transaction had an xid): the next fold drops it, every older transaction ended
    MetricGap.objects.filter(pk=gap.pk).update(noted_at=gap.noted_at - dt.timedelta(minutes=2))
    found = samples(scrape())
    assert not MetricGap.objects.filter(lo__lte=lost, hi__gt=lost).exists()
    assert value(found, "django_future_events_total", kind="scheduled") == 2


@pytest.mark.django_db
def test_the_command_says_how_to_install_prometheus_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "prometheus_client", None)
    with pytest.raises(CommandError, match=r"pip install 'django-future-ledger\[metrics\]'"):
        scrape()


@pytest.mark.django_db
def test_pruning_does_not_lower_the_counters() -> None:
    schedule_job("0s", "tests.handlers.record")
    run_jobs()
    before = samples(scrape())
    assert value(before, "django_future_events_total", kind="completed") == 1
    result = audit.prune(dt.timedelta(0), by="test")
    assert result.events == 3
    assert not JobEvent.objects.exists()
    after = samples(scrape())
    for kind in ("scheduled", "started", "completed"):
        assert value(after, "django_future_events_total", kind=kind) == 1
    assert value(after, "django_future_job_duration_seconds_count") == 1
    assert value(after, "django_future_metrics_unfolded_events") == 0


def test_a_scrape_never_waits_for_another_that_is_folding(clean_metrics: None) -> None:
    schedule_job("1h", "tests.handlers.record")
    with psycopg.connect(subprocess_env()["DATABASE_URL"]) as other:
        # another scrape holds the fold's lock (its transaction is still open)
        other.execute("SELECT pg_advisory_xact_lock(hashtext('django_future_metrics_fold'))")
        busy = samples(scrape())  # returns at once, with the totals as they were
        assert value(busy, "django_future_metrics_unfolded_events") >= 1
        assert ("django_future_events_total", (("kind", "scheduled"),)) not in busy
    done = samples(scrape())
    assert value(done, "django_future_events_total", kind="scheduled") == 1
    assert value(done, "django_future_metrics_unfolded_events") == 0
