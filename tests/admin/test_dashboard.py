"""The jobs dashboard through Django's test client: who may see it, what it draws from
known jobs, escaping, and the answers to bad window parameters. The page in a real
browser is tested in tests/browser."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from django_future import ledger, run_jobs, schedule_job
from django_future.dashboard import queries
from django_future.dashboard.svg import OUTCOME_COLOURS, UNRUN_LANE
from django_future.runner import Runner
from tests.support import db_now

pytestmark = pytest.mark.django_db

URL = reverse("admin:django_future_dashboard")
SCRIPT = "<script>alert('x')</script>"


def bars(body: str) -> dict[int, str]:
    """Job id -> outcome of each bar of the timeline."""
    found = re.findall(r'<rect class="bar" data-job="(\d+)" data-outcome="(\w+)"', body)
    return {int(job): outcome for job, outcome in found}


def test_only_staff_with_the_view_permission_see_it(client: Client) -> None:
    page = client.get(URL)
    assert page.status_code == 302 and "/login/" in page["Location"]
    staff = User.objects.create_user("staff", password="pw", is_staff=True)  # noqa: S106
    client.force_login(staff)
    assert client.get(URL).status_code == 403


def test_the_admin_index_links_to_it(admin_client: Client) -> None:
    body = admin_client.get(reverse("admin:index")).content.decode()
    assert f'href="{URL}"' in body and "Jobs dashboard" in body


def test_known_jobs_draw_one_bar_each_with_their_outcome(admin_client: Client) -> None:
    ok = schedule_job("0s", "tests.handlers.record", args=[SCRIPT])
    bad = schedule_job("0s", "tests.handlers.boom", args=[f"failed with {SCRIPT}"])
    retried = schedule_job("0s", "tests.handlers.boom", retries=1, retry_delay="1h")
    cancelled = schedule_job("0s", "tests.handlers.record")
    ledger.cancel(cancelled.pk, by="test", reason="not wanted")
    waiting = schedule_job("0s", "tests.handlers.record", queue="emails")
    run_jobs(ignore_errors=True, queues=["default"])

    page = admin_client.get(URL)
    assert page.status_code == 200
    body = page.content.decode()
    assert bars(body) == {ok.pk: "completed", bad.pk: "failed", retried.pk: "failed"}
    for job, outcome in ((ok, "completed"), (bad, "failed")):
        assert re.search(
            rf'data-job="{job.pk}" data-outcome="{outcome}"[^>]* fill="{OUTCOME_COLOURS[outcome]}"',
            body,
        )
    assert body.count('class="mark mark-retried"') == 1
    assert f'class="mark mark-cancelled" data-job="{cancelled.pk}"' in body
    # Arguments and error texts are shown as text, never as markup.
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body
    # The failing callables: boom twice (bad, and retried's first attempt), its last error.
    failing = page.context["failing"]
    assert [(f["row"].callable_name, f["row"].failures) for f in failing] == [
        ("tests.handlers.boom", 2)
    ]
    # The job left waiting in "emails" shows in that queue's depth at the window's end.
    queues = {q["queue"]: q for q in page.context["queues"]}
    assert queues["emails"]["depth_now"] == 1
    window = page.context["window"]
    waited = (window.end - waiting.time_slot_start).total_seconds()
    assert queues["emails"]["lag_now"] == pytest.approx(waited, abs=0.01)
    assert page.context["finished"] == 3
    assert waiting.pk not in bars(body)


def started_by(job_id: int, runner: str, lease: dt.timedelta) -> None:
    """Job ``job_id`` started by a registered runner named ``runner`` whose lease is
    ``lease`` (a microsecond: a dead runner, as after kill -9), as its event would."""
    process = Runner(lease=lease)
    process._register()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_future_jobevent (job_id, seq, kind, runner, data) "
            "VALUES (%s, 2, 'started', %s, jsonb_build_object('runner_id', %s::bigint))",
            [job_id, runner, process.runner_id],
        )


def test_lanes_per_runner_with_abandoned_and_running_attempts(admin_client: Client) -> None:
    lost = schedule_job("0s", "tests.handlers.record")
    started_by(lost.pk, "ghost:1", dt.timedelta(microseconds=1))
    busy = schedule_job("0s", "tests.handlers.record")
    started_by(busy.pk, "busy:2", dt.timedelta(hours=1))
    report = run_jobs()  # finds ghost:1 dead and abandons its job; busy:2 lives
    assert report.abandoned == [lost.pk]
    body = admin_client.get(URL).content.decode()
    assert bars(body) == {lost.pk: "abandoned", busy.pk: "running"}
    lanes = re.findall(r'class="lane">([^<]+)<title>', body)
    assert lanes == ["busy:2", "ghost:1"]
    assert body.count('class="mark mark-abandoned"') == 1
    assert UNRUN_LANE not in body  # no job expired or was cancelled


def test_a_past_window_leaves_out_what_happened_after_it(admin_client: Client) -> None:
    before = db_now()
    schedule_job("0s", "tests.handlers.record")
    run_jobs()
    end = (before - dt.timedelta(seconds=1)).isoformat()
    page = admin_client.get(URL, {"end": end, "minutes": "5"})
    assert page.status_code == 200
    assert bars(page.content.decode()) == {}
    assert page.context["window"].minutes == 5


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"minutes": "ten"}, "is not a whole number of minutes"),
        ({"end": "yesterday"}, "is not a date and time"),
        ({"end": "2026-13-45T99:00:00"}, "is not a date and time"),
    ],
)
def test_bad_parameters_get_a_400_that_says_why(
    admin_client: Client, params: dict[str, str], message: str
) -> None:
    page = admin_client.get(URL, params)
    assert page.status_code == 400
    assert message in page.content.decode()


def test_out_of_range_minutes_and_a_future_end_are_clamped_with_a_notice(
    admin_client: Client,
) -> None:
    page = admin_client.get(URL, {"minutes": "100000", "end": "2999-01-01T00:00:00"})
    assert page.status_code == 200
    window = page.context["window"]
    assert window.minutes == queries.MAX_MINUTES
    body = page.content.decode()
    assert "is outside 1 to 1440; showing 1440 minutes." in body
    assert "end is in the future" in body
    assert admin_client.get(URL, {"minutes": "0"}).context["window"].minutes == 1


@override_settings(
    DJANGO_FUTURE_PERIODIC={
        "nightly-report": {"cron": "30 2 * * *", "callable": "tests.handlers.record"}
    }
)
def test_periodic_schedules_show_their_next_tick(admin_client: Client) -> None:
    page = admin_client.get(URL)
    (schedule,) = page.context["periodic"]
    assert schedule.name == "nightly-report" and schedule.next_tick is not None
    assert "nightly-report" in page.content.decode()
