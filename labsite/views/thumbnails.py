"""The thumbnail job (labsite/thumbnails.py) made inside the request (blocking) or enqueued (deferred), like the
email; the upload is checked and spooled before either (after the bounded backlog's check, when deferred). Their
bodies may be as large as an upload (max_body): every other view's is capped at Django's form limit."""

from django.views.decorators.csrf import csrf_exempt

from labsite import dispatch, tasks, thumbnails
from labsite.views.common import allow, delivered, max_body, queued, shed_when_backlogged


@max_body(thumbnails.max_request_bytes)
@csrf_exempt
@allow("POST")
def thumbnail_blocking(request):
    return delivered(thumbnails.make_thumbnail(str(thumbnails.accept_upload(request))))


@max_body(thumbnails.max_request_bytes)
@csrf_exempt
@allow("POST")
def thumbnail_deferred(request):
    shed_when_backlogged()
    return queued(dispatch.enqueue(tasks.THUMBNAIL, str(thumbnails.accept_upload(request))).task_id)
