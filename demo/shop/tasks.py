"""Tasks of the demo shop, written against Django's standard task API.

``django.tasks`` is Django 6's; on Django 5.2 the same API comes from the ``django-tasks``
backport (``pip install "django-future-ledger[tasks]"``). With ``TASKS`` pointing at
``django_future.backends.LedgerBackend`` (demo/demo_project/settings.py), each
``enqueue()`` is a job in the ledger, run by the same ``runscheduledjobs`` runners as the
jobs that ``schedule_job`` makes, and each ``TaskResult`` is read back from the ledger.
"""

from __future__ import annotations

import asyncio
from typing import Any

try:
    from django.tasks import TaskContext, task
except ImportError:  # Django 5.2: the backport
    from django_tasks import TaskContext, task  # type: ignore[no-redef]

from demo.shop.models import Order


@task(queue_name="emails", priority=10)
def send_receipt(order_number: int, email: str) -> dict[str, Any]:
    """Mail the receipt of a paid order; what it returns is stored as JSON in the ledger."""
    return {"order": order_number, "sent_to": email, "template": "receipt"}


@task(takes_context=True)
def count_paid_orders(context: TaskContext, region: str) -> dict[str, Any]:
    """A task that receives its context: the attempt and its result, as the ledger has them."""
    paid = Order.objects.filter(paid=True).count()
    return {"region": region, "paid_orders": paid, "attempt": context.attempt}


@task(queue_name="reports", priority=-10)
async def warm_product_cache(page: str) -> str:
    """A coroutine task: the runner runs it in an event loop of its own."""
    await asyncio.sleep(0.01)
    return f"cache warm for {page}"
