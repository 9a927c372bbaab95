"""The demo has no web pages; Django still wants a URLconf."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
