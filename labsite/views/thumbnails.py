"""The thumbnail job (labsite/thumbnails.py) made inside the request (blocking) or enqueued (deferred), like the
email; the upload is checked and spooled before either."""

from django.views.decorators.csrf import csrf_exempt

from labsite import tasks, thumbnails
from labsite.views.common import allow, delivered, queued


@csrf_exempt
@allow("POST")
def thumbnail_blocking(request):
    return delivered(thumbnails.make_thumbnail(str(thumbnails.accept_upload(request))))


@csrf_exempt
@allow("POST")
def thumbnail_deferred(request):
    return queued(tasks.THUMBNAIL["huey"](str(thumbnails.accept_upload(request))).id)
