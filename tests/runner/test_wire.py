"""What crosses the wire between the runner and the database arrives exact: the claimed
rows a handler gets, and the return values its completions carry."""

from __future__ import annotations

import pytest

from django_future import schedule_job
from django_future.models import ScheduledJob
from django_future.runner import Runner
from tests import handlers
from tests.support import event, fresh
from tests.testapp.models import Order

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("batch_size", [1, 3])
def test_the_job_a_handler_gets_is_the_row_as_it_stands(batch_size: int) -> None:
    """Runners read claimed rows without the ORM's query path; they must be exact."""
    order = Order.objects.create(number="R-1")
    schedule_job("0s", "tests.handlers.with_job", args=[{"k": [1]}], retries=2, retry_delay="5s")
    schedule_job("0s", "tests.handlers.with_job_and_order", content_object=order)
    Runner(batch_size=batch_size).run()
    fields = [f.attname for f in ScheduledJob._meta.concrete_fields]
    for given, *_ in handlers.calls:
        expected = ScheduledJob.objects.get(pk=given.pk)
        # As it was while running: the same row before its completion was appended.
        assert given.status == "running" and given.last_seq == expected.last_seq - 1
        for name in fields:
            if name not in ("status", "last_seq", "last_hash", "execution_end", "return_value"):
                assert getattr(given, name) == getattr(expected, name), name
    assert handlers.calls[0][1] == {"k": [1]}
    assert handlers.calls[1][1] == order


def test_a_return_value_travels_exactly_with_the_next_claim() -> None:
    """The completion rides with the next claim as JSON: quotes, backslashes, braces,
    newlines and non-ASCII text arrive as they left, and None stays NULL."""
    tricky = ['q"uo\\te {a,b}', "ünï\ncode\t", "NULL", ""]
    first = schedule_job("0s", "tests.handlers.record", args=tricky)
    second = schedule_job("0s", "tests.handlers.returns_none")
    third = schedule_job("0s", "tests.handlers.record", args=[3])
    assert Runner().run().completed == [first.pk, second.pk, third.pk]
    assert fresh(first).return_value == f"recorded {tricky} {{}}"
    assert fresh(second).return_value is None
    assert event(first, "completed").data["return_value"] == f"recorded {tricky} {{}}"
