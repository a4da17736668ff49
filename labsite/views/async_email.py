"""The welcome email from async views, for an ASGI server (labsite.asgi under uvicorn): the blocking view's message,
parsing and answers, three ways of waiting for the send.

- `email_async`: aiosmtplib. The coroutine waits on the SMTP socket; no thread is held while the provider answers.
- `email_thread_sensitive`: `sync_to_async(send)`, Django's default thread_sensitive=True. asgiref runs it in the
  thread of the request's ThreadSensitiveContext, which Django's ASGI handler opens per request: one thread per
  request in flight, started on demand, no pool limit (outside such a context, e.g. a bare asyncio program, it would
  be one thread per process, and every send would queue for it).
- `email_thread_pool`: `sync_to_async(send, thread_sensitive=False)`: the event loop's default executor, a
  ThreadPoolExecutor of min(32, CPUs + 4) threads per process. That pool is the concurrency limit.

Each answers 200 once the SMTP server accepted the message, the blocking view's JSON; bad input is the same JSON
4xx. An SMTP failure (a refusal, a cut connection, a timeout) raises out of the view: Django's handler500 answers
the JSON 500 `{"error": "internal error"}`, as it does for the blocking view, and nothing was sent."""

from asgiref.sync import sync_to_async
from django.views.decorators.csrf import csrf_exempt

from labsite import jobs
from labsite.views.common import allow, delivered, email_parameter


def email_view(send):
    """An async POST view that awaits `send(to)` for the request's recipient and answers what it returned."""

    @csrf_exempt
    @allow("POST")
    async def view(request):
        return delivered(await send(email_parameter(request)))

    return view


email_async = email_view(jobs.send_welcome_email_async)
email_thread_sensitive = email_view(sync_to_async(jobs.send_welcome_email))
email_thread_pool = email_view(sync_to_async(jobs.send_welcome_email, thread_sensitive=False))
