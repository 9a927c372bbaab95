"""The demo shop's one model: an order that jobs can be bound to (a job's content object)."""

from __future__ import annotations

import time

from django.db import models


class Order(models.Model):
    number = models.PositiveIntegerField(unique=True)
    customer_email = models.EmailField()
    total_cents = models.PositiveIntegerField()
    paid = models.BooleanField(default=False)
    reminders_sent = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("number",)

    def __str__(self) -> str:
        return f"order {self.number}"

    def send_reminder(self) -> str:
        """Remind the customer to pay. Scheduled as a bound job::

            schedule_job("0s", "send_reminder", content_object=order)

        The runner loads the order and calls this method on it.
        """
        time.sleep(0.05)  # stands in for the mail server's round trip
        # An UPDATE with F() rather than save(): safe even if two reminders ran at once.
        Order.objects.filter(pk=self.pk).update(reminders_sent=models.F("reminders_sent") + 1)
        self.refresh_from_db(fields=["reminders_sent"])
        return f"reminder {self.reminders_sent} sent to {self.customer_email}"
