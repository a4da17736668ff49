"""The Django site under test. It knows nothing of the lab's instruments (helpers)."""

# Celery's Django guide: the app loads with Django, so `@shared_task` tasks bind to it and `.delay()` sends to the
# broker the settings name (settings.CELERY_BROKER_URL).
from labsite.celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
