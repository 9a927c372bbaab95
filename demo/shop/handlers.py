"""Job handlers of the demo shop, scheduled by dotted path, e.g.::

    schedule_job("0s", "demo.shop.handlers.notify_warehouse", content_object=order,
                 kwargs={"priority": "express"})

A handler scheduled with a ``content_object`` receives that object as its first
argument, then the job's ``args`` and ``kwargs``. One marked ``@job_as_parameter``
receives the running job before everything else. What a handler returns is stored
(as text) in the job's ``completed`` event; what it raises, in its ``failed`` event.
"""

from __future__ import annotations

import time

from django.db.models import Count, Sum

from demo.shop.models import Order
from django_future import job_as_parameter
from django_future.models import ScheduledJob

# The payment provider's test card number that is always declined.
DECLINED_TEST_CARD = "4000000000000002"


class PaymentDeclinedError(Exception):
    """The payment provider refused to capture the amount."""


def notify_warehouse(order: Order, priority: str = "standard") -> str:
    """Tell the warehouse to pack an order (a dotted-path handler bound to an order)."""
    time.sleep(0.02)
    return f"order {order.number} queued for packing ({priority})"


def capture_payment(order: Order, amount_cents: int, card: str) -> str:
    """Capture an authorised payment; raises PaymentDeclinedError for the declined test card."""
    time.sleep(0.05)  # the payment provider's round trip
    if card == DECLINED_TEST_CARD:
        raise PaymentDeclinedError(
            f"card ending {card[-4:]} declined for order {order.number} "
            f"({amount_cents / 100:.2f} EUR): do_not_honor"
        )
    Order.objects.filter(pk=order.pk).update(paid=True)
    return f"captured {amount_cents / 100:.2f} EUR for order {order.number}"


def rebuild_sales_report(region: str, days: int = 30) -> str:
    """A slow-ish report (0.2 s), not bound to any object: enough for runners to overlap."""
    time.sleep(0.2)
    totals = Order.objects.aggregate(orders=Count("id"), cents=Sum("total_cents"))
    return (
        f"{region}, last {days} days: {totals['orders']} orders, "
        f"{(totals['cents'] or 0) / 100:.2f} EUR"
    )


def send_newsletter(segment: str, issue: int) -> str:
    """Mail a newsletter issue to a customer segment (positional args only)."""
    time.sleep(0.05)
    return f"newsletter #{issue} sent to segment {segment!r}"


def request_review(order: Order) -> str:
    """Ask a customer for a product review, a week after the order."""
    return f"review request sent to {order.customer_email}"


@job_as_parameter
def check_abandoned_carts(job: ScheduledJob, max_reminders: int = 3) -> str:
    """A recurring job: count the unpaid orders, then schedule its own next run.

    ``@job_as_parameter`` makes the runner pass the job in; ``job.reschedule("1d")``
    schedules a copy of it (same callable, arguments and content object) a day later.
    """
    unpaid = Order.objects.filter(paid=False, reminders_sent__lt=max_reminders).count()
    follow_up = job.reschedule("1d")
    return f"{unpaid} unpaid orders to chase; next check is job {follow_up.pk}"


@job_as_parameter
def sync_inventory(job: ScheduledJob, sku: str) -> str:
    """Talks to a flaky warehouse API: the first attempt times out, the retry works.

    Scheduled with ``retries=2``: the runner records the failure, then a ``retry``
    event, and the next attempt (``job.attempts == 2``) succeeds.
    """
    if job.attempts < 2:
        raise TimeoutError(f"warehouse API did not answer for {sku} (attempt {job.attempts})")
    return f"stock of {sku} synced on attempt {job.attempts}"
