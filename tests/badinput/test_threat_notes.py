"""The limits that docs/security.md states, proved: what the ledger does NOT defend
against is tested as carefully as what it does, so that the notes cannot drift into
promising more than the code keeps."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from django_future import ledger, schedule_job
from django_future.models import JobEvent

pytestmark = pytest.mark.django_db

HEADS = "SELECT job_id, seq, hash FROM django_future_jobevent e WHERE seq = (SELECT max(seq) FROM django_future_jobevent WHERE job_id = e.job_id) ORDER BY job_id"


def test_arguments_are_stored_and_shown_in_clear(admin_client: Client) -> None:
    """A secret passed as an argument sits in the ledger for good, readable by anyone who
    can read the events table or open the job in the admin: pass a reference instead."""
    job = schedule_job("1d", "tests.handlers.record", kwargs={"api_token": "s3cr3t-t0ken"})
    with connection.cursor() as cursor:
        cursor.execute("SELECT data::text FROM django_future_jobevent WHERE job_id = %s", [job.pk])
        (data,) = cursor.fetchone()
    assert "s3cr3t-t0ken" in data
    page = admin_client.get(reverse("admin:django_future_scheduledjob_change", args=[job.pk]))
    assert "s3cr3t-t0ken" in page.content.decode()


def test_a_superuser_who_rewrites_a_whole_chain_passes_verify_but_not_exported_heads() -> None:
    """With the triggers off, rewriting an event AND recomputing every later hash AND
    rebuilding the row leaves nothing verify can see; only chain heads exported
    beforehand (docs/audit.md, "Tamper evidence") show it."""
    job = schedule_job("1d", "tests.handlers.record", args=["pay 10"])
    ledger.append(job.pk, "cancelled", {"by": "alice", "reason": "test"})
    with connection.cursor() as cursor:
        cursor.execute(HEADS)
        exported = cursor.fetchall()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE django_future_jobevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE django_future_jobevent SET data = jsonb_set(data, '{args}', '[\"pay 10000\"]')"
            " WHERE job_id = %s AND seq = 1",
            [job.pk],
        )
        for seq in (1, 2):  # each hash again, in order, from the one before
            cursor.execute(
                "UPDATE django_future_jobevent e SET hash = django_future_event_hash("
                "(SELECT p.hash FROM django_future_jobevent p WHERE p.job_id = e.job_id AND p.seq = e.seq - 1),"
                " e.job_id, e.seq, e.kind, e.at, e.runner, e.data) WHERE job_id = %s AND seq = %s",
                [job.pk, seq],
            )
        cursor.execute("ALTER TABLE django_future_jobevent ENABLE TRIGGER USER")
        ledger.rebuild()
        assert ledger.verify() == []  # not detected by the ledger alone
        assert JobEvent.objects.get(job_id=job.pk, seq=1).data["args"] == ["pay 10000"]
        cursor.execute(HEADS)
        assert cursor.fetchall() != exported  # detected against heads kept elsewhere
        transaction.set_rollback(True)
