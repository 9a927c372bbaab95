from django.apps import AppConfig
from django.conf import settings


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

        # job.cancel() and job.reschedule() call these; the models cannot import them
        # without a cycle (see Operations in models/jobs.py).
        models.provide_operations(
            models.Operations(cancel=ledger.cancel, schedule_job=scheduler.schedule_job)
        )

        # A project that runs Django's tasks on the ledger: the runner can run them once
        # the backend has filled django_future.taskhook, which importing it does. (Any
        # module of tasks imports it too, when its @task makes the backend.)
        tasks = getattr(settings, "TASKS", None)
        if isinstance(tasks, dict) and any(
            isinstance(params, dict)
            and str(params.get("BACKEND", "")).startswith("django_future.backends")
            for params in tasks.values()
        ):
            from django_future import backends  # noqa: F401
