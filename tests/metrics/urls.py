from django.urls import include, path

from django_future.metrics import views

urlpatterns = [
    path("metrics", views.metrics),
    path("mounted/", include("django_future.metrics.urls")),
]
