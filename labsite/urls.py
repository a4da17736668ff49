from django.urls import path

from labsite.views import async_email, djtasks, emails, errors, ledger, pages, status, thumbnails, transactions

urlpatterns = [
    path("noop/", emails.noop, name="noop"),
    path("email/blocking/", emails.email_blocking, name="email-blocking"),
    path("email/deferred/", emails.email_deferred, name="email-deferred"),
    # The same email in one of the designs of labsite.dispatch.EMAIL_DESIGNS (plain, retries, production).
    path("email/deferred/<str:design>/", emails.email_design, name="email-design"),
    # The deferred view's form, parsed and validated, nothing enqueued: its baseline.
    path("email/validate/", emails.email_validate, name="email-validate"),
    # A queued task's state, on whichever queue the settings chose (labsite.dispatch).
    path("tasks/<str:task_id>/", status.task_status, name="task-status"),
    # The same email from async views (labsite/views/async_email.py), for an ASGI server: aiosmtplib, or the blocking
    # send through sync_to_async, thread-sensitive (Django's default) or on the loop's thread pool.
    path("email/async/", async_email.email_async, name="email-async"),
    path("email/async/thread-sensitive/", async_email.email_thread_sensitive, name="email-async-thread-sensitive"),
    path("email/async/thread-pool/", async_email.email_thread_pool, name="email-async-thread-pool"),
    # The job ledger design (labsite/ledger.py): nothing accepted is lost.
    path("email/ledger/", ledger.email_ledger, name="email-ledger"),
    path("jobs/<str:job_id>/", ledger.job_status, name="job-status"),
    # Can a task run before, or despite, its transaction? (labsite/views/transactions.py)
    path("tx/rollback/", transactions.tx_rollback, name="tx-rollback"),
    path("tx/slow-commit/", transactions.tx_slow_commit, name="tx-slow-commit"),
    path("tx/on-commit/", transactions.tx_on_commit, name="tx-on-commit"),
    path("thumbnails/blocking/", thumbnails.thumbnail_blocking, name="thumbnail-blocking"),
    path("thumbnails/deferred/", thumbnails.thumbnail_deferred, name="thumbnail-deferred"),
    path("djtasks/email/", djtasks.email_djtask, name="djtask-email"),
    path("djtasks/thumbnails/", djtasks.thumbnail_djtask, name="djtask-thumbnail"),
    path("djtasks/<str:task_id>/", status.task_status, {"api": djtasks.API}, name="djtask-status"),
    # The sign-up page a person sees (CSRF-protected form posts).
    path("signup/", pages.signup_page, name="signup"),
    path("signup/blocking/", pages.signup_blocking, name="signup-blocking"),
    path("signup/deferred/", pages.signup_deferred, name="signup-deferred"),
    path("signup/done/", pages.signup_done, name="signup-done"),
]

handler400 = errors.bad_request
handler404 = errors.not_found
handler500 = errors.server_error
