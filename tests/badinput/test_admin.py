"""Bad input at the admin: changelist filters, ?q=, ?o=, ?p=, date-hierarchy parameters,
object ids in URLs and crafted action POSTs, with a real (test) client and a superuser.
A refused filter shows the whole list with a message that names the filter; nothing is
ever written, and no request ends in a server error."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from django_future import schedule_job
from tests.support import counts, kinds

pytestmark = pytest.mark.django_db

JOBS = reverse("admin:django_future_scheduledjob_changelist")
EVENTS = reverse("admin:django_future_jobevent_changelist")
TICKS = reverse("admin:django_future_periodictick_changelist")
CHANGES = reverse("admin:django_future_periodicchange_changelist")

# (list, query string): filters the database cannot compare, refused with a message
REFUSED_FILTERS = [
    (JOBS, "status=%00"),
    (JOBS, "queue=a%00b"),
    (JOBS, "lock=%00"),
    (JOBS, "callable_name=%00"),
    (JOBS, "unique_while=%00"),
    (JOBS, "has_unique_key=%00"),
    (JOBS, "q=%00"),
    (JOBS, "o=1.%00"),
    (JOBS, "priority=abc"),
    (JOBS, "time_slot_start__gte=garbage"),
    (JOBS, "time_slot_start__year=99999999999"),
    (JOBS, "time_slot_start__year=2026&time_slot_start__month=13"),
    (JOBS, "time_slot_start__year=-1"),
    (EVENTS, "q=%00"),
    (EVENTS, "kind=%00"),
    (TICKS, "schedule=%00"),
    (TICKS, "q=%00"),
    (CHANGES, "schedule=%00"),
]

# (list, query string): harmless, the list is shown (200)
SHOWN = [
    (JOBS, "q=" + "x" * 10_000),
    (JOBS, f"q={10**30}"),
    (JOBS, "q=%ED%A0%80"),  # bytes that are not UTF-8: Django decodes them with U+FFFD
    (JOBS, f"priority={10**30}"),
    (JOBS, "o=abc"),
    (JOBS, "o=99"),
    (JOBS, "o=-1.-1"),
    (JOBS, f"p={10**30}"),
    (JOBS, "p=-1"),
    (EVENTS, "q=abc"),
    (EVENTS, f"q={10**30}"),
]


@pytest.mark.parametrize(
    ("page", "query"),
    REFUSED_FILTERS,
    ids=[f"{p.split('/')[-2]}?{q}"[:50] for p, q in REFUSED_FILTERS],
)
def test_unusable_filters_are_refused_with_a_message(
    admin_client: Client, page: str, query: str
) -> None:
    schedule_job("1d", "tests.handlers.record")
    before = counts()
    response = admin_client.get(f"{page}?{query}")
    assert response.status_code == 302
    assert response["Location"] == f"{page}?e=1"
    told = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(m.startswith("Filter ignored:") for m in told), told
    shown = admin_client.get(response["Location"])
    assert shown.status_code == 200
    assert counts() == before


@pytest.mark.parametrize(
    ("page", "query"), SHOWN, ids=[f"{p.split('/')[-2]}?{q}"[:50] for p, q in SHOWN]
)
def test_harmless_odd_parameters_show_the_list(admin_client: Client, page: str, query: str) -> None:
    schedule_job("1d", "tests.handlers.record")
    before = counts()
    assert admin_client.get(f"{page}?{query}").status_code == 200
    assert counts() == before


@pytest.mark.parametrize("model", ["scheduledjob", "jobevent", "periodictick", "periodicchange"])
@pytest.mark.parametrize("object_id", ["abc", "-1", "0", str(2**63), str(10**30), "%00", "1%00"])
def test_object_ids_that_are_no_objects_go_back_with_a_message(
    admin_client: Client, model: str, object_id: str
) -> None:
    before = counts()
    response = admin_client.get(f"/admin/django_future/{model}/{object_id}/change/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    told = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert "doesn\u2019t exist" in told or "doesn't exist" in told
    assert counts() == before


def test_the_timeline_of_a_job_with_odd_text_renders_escaped(admin_client: Client) -> None:
    """The timeline shows what was recorded, escaped: markup in arguments stays text."""
    job = schedule_job(
        "1d", "tests.handlers.record", args=["<script>alert(1)</script>"], lock="<b>l</b>"
    )
    page = admin_client.get(reverse("admin:django_future_scheduledjob_change", args=[job.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in body and "&lt;b&gt;l&lt;/b&gt;" in body


@pytest.mark.parametrize(
    "selected", [["abc"], ["\x00"], ["1.5"], ["-1"], [str(2**63)], ["9" * 5000]]
)
@pytest.mark.parametrize("action", ["cancel_jobs", "run_again"])
def test_crafted_action_ids_do_nothing_and_say_so(
    admin_client: Client, action: str, selected: list[str]
) -> None:
    job = schedule_job("1d", "tests.handlers.record")
    before = counts()
    response = admin_client.post(
        JOBS, {"action": action, "_selected_action": [str(job.pk), *selected]}
    )
    assert response.status_code == 302
    told = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert "Not job ids" in told and "nothing was done" in told
    assert counts() == before
    assert kinds(job) == ["scheduled"]


@pytest.mark.parametrize("action", ["nosuchaction", "cancel_jobs\x00", "delete_selected"])
def test_unknown_actions_do_nothing(admin_client: Client, action: str) -> None:
    job = schedule_job("1d", "tests.handlers.record")
    before = counts()
    response = admin_client.post(JOBS, {"action": action, "_selected_action": [str(job.pk)]})
    assert response.status_code in (200, 302)
    assert counts() == before
    assert kinds(job) == ["scheduled"]
