from django.apps import AppConfig


class DjangoFutureConfig(AppConfig):
    name = "django_future"
    verbose_name = "Scheduled jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_future import (
            checks,  # noqa: F401 - registers the system checks
            ledger,
            models,
            scheduler,
        )

        # job.cancel() and job.reschedule() call these; models.py cannot import them
        # without a cycle (see the end of models.py).
        models.provide_operations(
            models.Operations(cancel=ledger.cancel, schedule_job=scheduler.schedule_job)
        )
