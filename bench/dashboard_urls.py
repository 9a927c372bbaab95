"""URLs of the dashboard benchmark's Django (bench/dashboard.py): the admin only."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
