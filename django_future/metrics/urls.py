"""``path("", include("django_future.metrics.urls"))`` serves the metrics at ``metrics``."""

from django.urls import path

from django_future.metrics import views

app_name = "django_future_metrics"
urlpatterns = [path("metrics", views.metrics, name="metrics")]
