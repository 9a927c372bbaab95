"""The demo's web pages: the admin, with the jobs dashboard (`dev.py demo --serve`)."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, path

urlpatterns: list[URLPattern | URLResolver] = [path("admin/", admin.site.urls)]
