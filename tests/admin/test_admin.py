"""The admin: browse and filter jobs, read a job's timeline, cancel and run again;
never edit or delete a job or an event."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from django_future import run_jobs, schedule_job
from django_future.models import JobEvent, ScheduledJob
from tests.support import kinds

pytestmark = pytest.mark.django_db


def url(name: str, *args: object) -> str:
    return reverse(f"admin:django_future_{name}", args=args)


def test_job_list_filters_and_search(admin_client: Client) -> None:
    failed = schedule_job("0s", "tests.handlers.boom")
    waiting = schedule_job("1d", "tests.handlers.record")
    run_jobs(ignore_errors=True)
    page = admin_client.get(url("scheduledjob_changelist"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "tests.handlers.boom" in body and "tests.handlers.record" in body
    for filt in ("By status", "By callable name", "By time slot start", "By atomic"):
        assert filt in body

    def listed(**query: str) -> list[int]:
        response = admin_client.get(url("scheduledjob_changelist"), query)
        return [job.pk for job in response.context["cl"].result_list]

    assert listed(status="failed") == [failed.pk]
    assert listed(callable_name="tests.handlers.record") == [waiting.pk]
    assert listed(q="record") == [waiting.pk]
    assert listed(q=str(failed.pk)) == [failed.pk]


def test_job_list_shows_and_filters_by_queue_and_priority(admin_client: Client) -> None:
    emails = schedule_job("1d", "tests.handlers.record", queue="emails", priority=7)
    plain = schedule_job("1d", "tests.handlers.record")
    page = admin_client.get(url("scheduledjob_changelist"))
    body = page.content.decode()
    assert "By queue" in body and "By priority" in body
    assert "column-queue" in body and "column-priority" in body

    def listed(**query: str) -> list[int]:
        response = admin_client.get(url("scheduledjob_changelist"), query)
        return [job.pk for job in response.context["cl"].result_list]

    assert listed(queue="emails") == [emails.pk]
    assert listed(priority="0") == [plain.pk]
    job_page = admin_client.get(url("scheduledjob_change", emails.pk)).content.decode()
    assert "emails" in job_page


def test_job_list_shows_filters_and_finds_unique_keys(admin_client: Client) -> None:
    keyed = schedule_job("1d", "tests.handlers.record", unique_key="sync-user-42")
    active = schedule_job(
        "1d", "tests.handlers.record", unique_key="sync-user-7", unique_while="active"
    )
    plain = schedule_job("1d", "tests.handlers.record")
    body = admin_client.get(url("scheduledjob_changelist")).content.decode()
    assert "By unique key" in body and "By unique while" in body
    assert "column-unique_key" in body and "sync-user-42" in body

    def listed(**query: str) -> list[int]:
        response = admin_client.get(url("scheduledjob_changelist"), query)
        return sorted(job.pk for job in response.context["cl"].result_list)

    assert listed(has_unique_key="yes") == [keyed.pk, active.pk]
    assert listed(has_unique_key="no") == [plain.pk]
    assert listed(unique_while="active") == [active.pk]
    assert listed(q="sync-user-42") == [keyed.pk]  # the whole key
    assert listed(q="sync-user") == []  # not a part of it
    job_page = admin_client.get(url("scheduledjob_change", active.pk)).content.decode()
    assert "sync-user-7" in job_page and "active" in job_page


def test_job_list_shows_filters_and_searches_by_lock(admin_client: Client) -> None:
    locked = schedule_job("1d", "tests.handlers.record", lock="user-42")
    plain = schedule_job("1d", "tests.handlers.record")
    body = admin_client.get(url("scheduledjob_changelist")).content.decode()
    assert "By lock" in body and "column-lock" in body and "user-42" in body

    def listed(**query: str) -> list[int]:
        response = admin_client.get(url("scheduledjob_changelist"), query)
        return [job.pk for job in response.context["cl"].result_list]

    assert listed(lock="user-42") == [locked.pk]
    assert listed(lock__isnull="True") == [plain.pk]
    assert listed(q="user-42") == [locked.pk]
    assert "user-42" in admin_client.get(url("scheduledjob_change", locked.pk)).content.decode()


def test_job_page_shows_the_event_timeline_read_only(admin_client: Client) -> None:
    job = schedule_job("0s", "tests.handlers.boom", args=["card declined"])
    run_jobs(ignore_errors=True)
    page = admin_client.get(url("scheduledjob_change", job.pk))
    assert page.status_code == 200
    body = page.content.decode()
    for text in (
        "<strong>scheduled</strong>",
        "<strong>started</strong>",
        "<strong>failed</strong>",
        "ValueError: card declined",
    ):
        assert text in body
    assert 'name="_save"' not in body  # nothing to save


def test_jobs_and_events_cannot_be_added_changed_or_deleted(admin_client: Client) -> None:
    job = schedule_job("0s", "tests.handlers.record")
    event = JobEvent.objects.get(job_id=job.pk)
    for name in ("scheduledjob", "jobevent"):
        obj = job.pk if name == "scheduledjob" else event.pk
        assert admin_client.get(url(f"{name}_add")).status_code == 403
        assert (
            admin_client.post(url(f"{name}_change", obj), {"kind": "completed"}).status_code == 403
        )
        assert admin_client.get(url(f"{name}_delete", obj)).status_code == 403
        assert admin_client.post(url(f"{name}_delete", obj), {"post": "yes"}).status_code == 403
    bulk_delete = admin_client.post(
        url("jobevent_changelist"), {"action": "delete_selected", "_selected_action": [event.pk]}
    )
    assert bulk_delete.status_code in (200, 302)
    assert kinds(job) == ["scheduled"]
    assert admin_client.get(url("jobevent_changelist")).status_code == 200


def test_cancel_action_appends_who_and_why(admin_client: Client) -> None:
    waiting = schedule_job("1d", "tests.handlers.record")
    done = schedule_job("0s", "tests.handlers.record")
    run_jobs()
    response = admin_client.post(
        url("scheduledjob_changelist"),
        {"action": "cancel_jobs", "_selected_action": [waiting.pk, done.pk]},
        follow=True,
    )
    body = response.content.decode()
    assert "Cancelled 1 job(s)." in body
    assert f"left as they were: {done.pk} (complete)" in body
    assert ScheduledJob.objects.get(pk=waiting.pk).status == "cancelled"
    event = JobEvent.objects.get(job_id=waiting.pk, kind="cancelled")
    assert event.data == {"by": "admin", "reason": "cancelled from the admin"}


def test_run_again_schedules_a_copy_now(admin_client: Client) -> None:
    job = schedule_job("0s", "tests.handlers.boom", args=["x"])
    run_jobs(ignore_errors=True)
    response = admin_client.post(
        url("scheduledjob_changelist"),
        {"action": "run_again", "_selected_action": [job.pk]},
        follow=True,
    )
    copy = ScheduledJob.objects.exclude(pk=job.pk).get()
    assert f"Scheduled copies: job(s) {copy.pk}." in response.content.decode()
    assert (copy.callable_name, copy.args, copy.status) == (
        "tests.handlers.boom",
        ["x"],
        "scheduled",
    )
    scheduled = JobEvent.objects.get(job_id=copy.pk, seq=1)
    assert scheduled.data["rescheduled_from"] == job.pk and scheduled.data["by"] == "admin"
    run_jobs(ignore_errors=True)  # leave it finished
