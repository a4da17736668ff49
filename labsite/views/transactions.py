"""Can a task run before, or despite, the transaction that created it? Each view writes a Signup row inside
`transaction.atomic()` on Django's default database and enqueues through the configured queue (labsite.dispatch):

- /tx/rollback/: enqueues the welcome email directly inside the transaction (the mistake being measured), then
  rolls the transaction back. A queue outside Django's database keeps the task; one inside it loses it with the row.
- /tx/slow-commit/: enqueues the signup check (labsite.jobs.check_signup) directly, holds the transaction open
  `hold_ms`, then commits. The task mails what it saw: the row missing means it ran before the commit.
- /tx/on-commit/: the same, enqueued the way Django documents, `transaction.on_commit(partial(...))`.

The answers carry `commit_started_at` (epoch s, just before the commit) so a task that started earlier inside the
same transaction (an immediate backend: it sees its own transaction's row) is told apart too.

The held transactions stall the site: on SQLite (transaction_mode IMMEDIATE) the Signup INSERT takes the database's
write lock, held for `hold_ms`, so every other write of the site, the ledger's and a database queue's included, waits
up to MAX_HOLD_MS. Only notebook 07 calls them (helpers.instruments.queue_semantics.transaction_outcomes), in its
last section, when nothing else is measured on that lab."""

import time
from functools import partial

from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from labsite import dispatch
from labsite.models import Signup
from labsite.views.common import BadRequest, allow, email_parameter

MAX_HOLD_MS = 2000  # a web worker held longer than this is a denial of service, not an experiment


def hold_ms_parameter(request, default: int = 500) -> int:
    """How long to hold the transaction open, in ms: a whole number from 0 to MAX_HOLD_MS."""
    values = request.POST.getlist("hold_ms")
    if not values:
        return default
    text = values[0]
    if len(values) == 1 and text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= MAX_HOLD_MS:
        return int(text)
    raise BadRequest(f"'hold_ms' must be one whole number from 0 to {MAX_HOLD_MS}")


@csrf_exempt
@allow("POST")
def tx_rollback(request):
    to = email_parameter(request)
    with transaction.atomic():
        signup = Signup.objects.create(email=to)
        task_id = dispatch.enqueue_welcome_email(to)
        transaction.set_rollback(True)
    return JsonResponse({"rolled_back": True, "to": to, "task_id": task_id, "signup_id": signup.pk})


def held_signup(request, on_commit: bool) -> JsonResponse:
    """Write the row, enqueue its check (now, or once committed), hold the transaction `hold_ms`, commit."""
    to, hold_ms = email_parameter(request), hold_ms_parameter(request)
    task_id = None
    with transaction.atomic():
        signup = Signup.objects.create(email=to)
        if on_commit:
            transaction.on_commit(partial(dispatch.enqueue_signup_check, to, signup.pk))
        else:
            task_id = dispatch.enqueue_signup_check(to, signup.pk)
        time.sleep(hold_ms / 1000)
        commit_started_at = time.time()
    return JsonResponse({"to": to, "signup_id": signup.pk, "task_id": task_id, "hold_ms": hold_ms,
                         "on_commit": on_commit, "commit_started_at": commit_started_at, "committed_at": time.time()})


@csrf_exempt
@allow("POST")
def tx_slow_commit(request):
    return held_signup(request, on_commit=False)


@csrf_exempt
@allow("POST")
def tx_on_commit(request):
    return held_signup(request, on_commit=True)
