"""A small site with the recipe (docs/recipe/outbox) as its only app, for tests/test_recipe.py: django-tasks-db's
DatabaseBackend on a SQLite file, Django's SMTP mailer to the test's SMTP server, short leases and retries. The test
puts its copy of the recipe on PYTHONPATH and names the file and the port in the environment."""

import os

SECRET_KEY = "recipe-test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["outbox", "django_tasks_db"]
MIDDLEWARE = []
ROOT_URLCONF = "tests.recipe_urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["RECIPE_DB"],
        # web workers, the task worker and the reconciler write at once: as the lab's own site does
        "OPTIONS": {"init_command": "pragma journal_mode=wal;", "transaction_mode": "IMMEDIATE", "timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                       "OPTIONS": {"host": "127.0.0.1", "port": int(os.environ["RECIPE_SMTP_PORT"])}}}
DEFAULT_FROM_EMAIL = "site@example.test"
OUTBOX_LEASE_S = float(os.environ.get("RECIPE_LEASE_S", "2"))
OUTBOX_RETRY = (0.2, 1.0, 5)  # first retry after 0.2 s, doubling up to 1 s, at most 5 attempts
LOGGING = {"version": 1, "disable_existing_loggers": False, "handlers": {"stderr": {"class": "logging.StreamHandler"}},
           "loggers": {"django_tasks_db": {"handlers": ["stderr"], "level": "INFO"},
                       "django": {"handlers": ["stderr"], "level": "WARNING"}}}
