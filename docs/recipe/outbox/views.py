import uuid
from functools import partial

from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, validate_email
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_POST

from .models import EmailJob
from .tasks import LEASE, send_email


@require_POST
def welcome_email(request):
    """Write the job and, once it commits, enqueue its task; a retry with the same Idempotency-Key gets that job."""
    to, key = request.POST.get("to", ""), request.headers.get("Idempotency-Key") or uuid.uuid4().hex
    try:
        validate_email(to)
        MaxLengthValidator(255)(key)
    except ValidationError as error:
        return JsonResponse({"error": error.messages}, status=400)
    try:
        with transaction.atomic():
            job = EmailJob.objects.create(key=key, to=to, due_at=timezone.now() + LEASE)
            transaction.on_commit(partial(send_email.enqueue, job.pk), robust=True)
    except IntegrityError:  # this key's first request committed its job already
        job = EmailJob.objects.get(key=key)
    if job.to != to:
        return JsonResponse({"error": "this Idempotency-Key was used for another recipient"}, status=422)
    return JsonResponse({"job": job.pk, "state": job.state, "message_id": job.message_id}, status=202)
