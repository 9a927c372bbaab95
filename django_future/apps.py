from django.apps import AppConfig


class DjangoFutureConfig(AppConfig):
    name = "django_future"
    verbose_name = "Scheduled jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_future import checks  # noqa: F401 - registers the system checks
