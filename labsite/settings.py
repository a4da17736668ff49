"""Settings come from LAB_* environment variables so the lab can start each run with its own.

Defaults suit the unit tests and a developer poking at the site; helpers.stack sets every
variable explicitly for a measured run.
"""

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
RUN_DIR = Path(os.environ.get("LAB_RUN_DIR", BASE_DIR.parent / "data" / "runs" / "dev"))
RUN_DIR.mkdir(parents=True, exist_ok=True)


def env_flag(name: str, default: bool = False) -> bool:
    return os.environ.get(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


# A fresh key per process unless the lab hands one down (it generates one per run): never committed.
SECRET_KEY = os.environ.get("LAB_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = env_flag("LAB_DEBUG")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "huey.contrib.djhuey",
    "labsite",
]

# Kept short on purpose: every middleware is paid by the no-op baseline and both paths alike.
MIDDLEWARE = [
    "labsite.middleware.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "labsite.urls"
WSGI_APPLICATION = "labsite.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": RUN_DIR / "site.sqlite3",
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

# The welcome email goes over real SMTP to the lab's own server on loopback (Django 6.1's MAILERS).
MAILERS = {
    "default": {
        "BACKEND": os.environ.get("LAB_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend"),
        "OPTIONS": {
            "host": "127.0.0.1",
            "port": int(os.environ.get("LAB_SMTP_PORT", "8025")),
            "timeout": float(os.environ.get("LAB_SMTP_TIMEOUT", "30")),
        },
    }
}
DEFAULT_FROM_EMAIL = "lab@tasks-lab.test"

# Huey on SQLite, in the run's own folder. The consumer's options come from run_huey's command line.
HUEY = {
    "huey_class": "labsite.queue.LabSqliteHuey",
    "name": "labsite",
    "filename": str(Path(os.environ.get("LAB_HUEY_FILE", RUN_DIR / "huey.sqlite3"))),
    "immediate": env_flag("LAB_HUEY_IMMEDIATE"),
    "results": True,
    "synchronous": os.environ.get("LAB_HUEY_SYNC", "normal"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "huey": {"handlers": ["stderr"], "level": os.environ.get("LAB_HUEY_LOG_LEVEL", "INFO")},
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
    },
}
