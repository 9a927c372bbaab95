"""Two writers of the same step: the second is told to re-read the job and decide again."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection, transaction

from django_future import ledger, schedule_job
from django_future.ledger import ConcurrentAppendError
from django_future.models import EventKind, ScheduledJob
from tests.support import kinds, subprocess_env

pytestmark = pytest.mark.usefixtures("committed_db")


def test_second_writer_of_the_same_step_loses() -> None:
    """A writer that read the job, then saw another writer append its next event first
    (from a second real connection), gets ConcurrentAppendError from ledger.append, and
    its transaction stays usable. Its snapshot is REPEATABLE READ, so that the job it
    read is the job it decides on."""
    job = schedule_job("1d", "tests.handlers.record")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert ScheduledJob.objects.get(pk=job.pk).last_seq == 1  # what this writer saw
        with psycopg.connect(subprocess_env()["DATABASE_URL"], autocommit=True) as other:
            other.execute(
                "SELECT django_future_append(%s, 'cancelled', 'other:1', '{}', NULL, NULL)",
                [job.pk],
            )
        with (
            pytest.raises(ConcurrentAppendError, match="another writer appended its next event"),
            transaction.atomic(),
        ):
            ledger.append(job.pk, EventKind.EXPIRED, runner="this:1")
        assert ScheduledJob.objects.get(pk=job.pk).last_seq == 1  # still usable
    assert kinds(job) == ["scheduled", "cancelled"]
    assert ScheduledJob.objects.get(pk=job.pk).status == "cancelled"
