"""The recipe's view, at /email/ (tests/recipe_settings.py)."""

from django.urls import path
from outbox.views import welcome_email

urlpatterns = [path("email/", welcome_email)]
