"""Admin permissions with real users and real requests: view permission sees, change
permission acts, nobody edits a ledger row, and every POST needs its CSRF token."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from django_future import run_jobs, schedule_job
from django_future.models import JobEvent, ScheduledJob
from tests.support import counts, kinds

pytestmark = pytest.mark.django_db


def url(name: str, *args: object) -> str:
    return reverse(f"admin:django_future_{name}", args=args)


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_future", codename__in=codenames)
    )
    return user


def logged_in(user: User, **options: bool) -> Client:
    client = Client(**options)
    client.force_login(user)
    return client


@pytest.fixture
def jobs() -> tuple[ScheduledJob, ScheduledJob]:
    """One job waiting, one that ran and failed: something to see, cancel and run again."""
    waiting = schedule_job("1d", "tests.handlers.record")
    failed = schedule_job("0s", "tests.handlers.boom", args=["card declined"])
    run_jobs(ignore_errors=True)
    return waiting, failed


def crafted_posts(client: Client, ids: list[int]) -> list[int]:
    """Both actions, posted straight to the list as the page's form would post them."""
    return [
        client.post(
            url("scheduledjob_changelist"),
            {"action": action, "_selected_action": ids, "index": 0},
        ).status_code
        for action in ("cancel_jobs", "run_again")
    ]


def test_view_permission_sees_jobs_and_their_timeline_but_cannot_act(jobs: tuple) -> None:
    waiting, failed = jobs
    viewer = logged_in(staff("viewer", "view_scheduledjob", "view_jobevent"))
    page = viewer.get(url("scheduledjob_changelist"))
    assert page.status_code == 200
    assert [job.pk for job in page.context["cl"].result_list] == [waiting.pk, failed.pk]
    body = page.content.decode()
    assert "tests.handlers.boom" in body
    assert "cancel_jobs" not in body and "run_again" not in body  # no action offered
    detail = viewer.get(url("scheduledjob_change", failed.pk)).content.decode()
    assert "<strong>failed</strong>" in detail and "ValueError: card declined" in detail
    assert 'name="_save"' not in detail
    assert viewer.get(url("jobevent_changelist")).status_code == 200

    before = counts()
    assert crafted_posts(viewer, [waiting.pk, failed.pk]) == [200, 200]
    assert counts() == before  # no job, no event
    assert kinds(waiting) == ["scheduled"]
    # Every other writing door: refused outright.
    assert (
        viewer.post(url("scheduledjob_change", waiting.pk), {"status": "cancelled"}).status_code
        == 403
    )
    assert viewer.post(url("scheduledjob_delete", waiting.pk), {"post": "yes"}).status_code == 403
    assert viewer.post(url("scheduledjob_add"), {"callable_name": "os.system"}).status_code == 403
    assert counts() == before


def test_no_permission_sees_nothing(jobs: tuple) -> None:
    waiting, _failed = jobs
    nobody = logged_in(staff("nobody"))
    assert nobody.get(url("scheduledjob_changelist")).status_code == 403
    assert nobody.get(url("scheduledjob_change", waiting.pk)).status_code == 403
    before = counts()
    assert crafted_posts(nobody, [waiting.pk]) == [403, 403]
    assert counts() == before
    # A user who is not staff is sent to the login page, and nothing is written.
    outsider = logged_in(User.objects.create_user("outsider"))
    assert crafted_posts(outsider, [waiting.pk]) == [302, 302]
    assert counts() == before


def test_change_permission_acts(jobs: tuple) -> None:
    waiting, failed = jobs
    operator = logged_in(staff("operator", "view_scheduledjob", "change_scheduledjob"))
    body = operator.get(url("scheduledjob_changelist")).content.decode()
    assert 'value="cancel_jobs"' in body and 'value="run_again"' in body
    detail = operator.get(url("scheduledjob_change", waiting.pk)).content.decode()
    assert 'name="_save"' not in detail  # acting is not editing
    assert crafted_posts(operator, [waiting.pk]) == [302, 302]
    assert kinds(waiting) == ["scheduled", "cancelled"]
    assert JobEvent.objects.get(job_id=waiting.pk, kind="cancelled").data["by"] == "operator"
    # run_again on the cancelled job made a copy of it
    assert ScheduledJob.objects.exclude(pk__in=[waiting.pk, failed.pk]).count() == 1
    # Change permission edits nothing either.
    before = counts()
    assert (
        operator.post(url("scheduledjob_change", failed.pk), {"status": "complete"}).status_code
        == 403
    )
    assert operator.post(url("scheduledjob_delete", failed.pk), {"post": "yes"}).status_code == 403
    assert counts() == before


def test_superusers_cannot_add_edit_or_delete_any_ledger_row(
    admin_client: Client, jobs: tuple
) -> None:
    waiting, _failed = jobs
    before = counts()
    for name in ("scheduledjob", "jobevent", "periodictick", "periodicchange"):
        assert admin_client.get(url(f"{name}_add")).status_code == 403
        assert admin_client.post(url(f"{name}_add"), {}).status_code == 403
    assert (
        admin_client.post(url("scheduledjob_change", waiting.pk), {"status": "x"}).status_code
        == 403
    )
    assert (
        admin_client.post(url("scheduledjob_delete", waiting.pk), {"post": "yes"}).status_code
        == 403
    )
    assert counts() == before


def test_csrf_is_enforced_on_actions(jobs: tuple) -> None:
    waiting, _failed = jobs
    admin = User.objects.create_superuser("root")
    client = logged_in(admin, enforce_csrf_checks=True)
    before = counts()
    assert crafted_posts(client, [waiting.pk]) == [403, 403]  # no token
    assert counts() == before and kinds(waiting) == ["scheduled"]
    # The same POST with the page's token goes through: the 403 was CSRF's.
    page = client.get(url("scheduledjob_changelist")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    response = client.post(
        url("scheduledjob_changelist"),
        {
            "action": "cancel_jobs",
            "_selected_action": [waiting.pk],
            "index": 0,
            "csrfmiddlewaretoken": token.group(1),
        },
    )
    assert response.status_code == 302
    assert kinds(waiting) == ["scheduled", "cancelled"]
