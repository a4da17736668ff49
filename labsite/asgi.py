"""The site as an ASGI application, for uvicorn (helpers.stack.lab, LabConfig.web_server="uvicorn"): async views run
on the worker's event loop, sync views in a thread each (Django's sync_to_async, thread-sensitive)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labsite.settings")
application = get_asgi_application()
