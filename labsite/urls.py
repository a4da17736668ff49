from django.urls import path

from labsite.views import djtasks, emails, errors, ledger, pages, thumbnails

urlpatterns = [
    path("noop/", emails.noop, name="noop"),
    path("email/blocking/", emails.email_blocking, name="email-blocking"),
    path("email/deferred/", emails.email_deferred, name="email-deferred"),
    path("tasks/<str:task_id>/", emails.task_status, name="task-status"),
    # The job ledger design (labsite/ledger.py): nothing accepted is lost.
    path("email/ledger/", ledger.email_ledger, name="email-ledger"),
    path("jobs/<str:job_id>/", ledger.job_status, name="job-status"),
    path("thumbnails/blocking/", thumbnails.thumbnail_blocking, name="thumbnail-blocking"),
    path("thumbnails/deferred/", thumbnails.thumbnail_deferred, name="thumbnail-deferred"),
    path("djtasks/email/", djtasks.email_djtask, name="djtask-email"),
    path("djtasks/thumbnails/", djtasks.thumbnail_djtask, name="djtask-thumbnail"),
    path("djtasks/<str:result_id>/", djtasks.djtask_status, name="djtask-status"),
    # The sign-up page a person sees (CSRF-protected form posts).
    path("signup/", pages.signup_page, name="signup"),
    path("signup/blocking/", pages.signup_blocking, name="signup-blocking"),
    path("signup/deferred/", pages.signup_deferred, name="signup-deferred"),
    path("signup/done/", pages.signup_done, name="signup-done"),
]

handler400 = errors.bad_request
handler404 = errors.not_found
handler500 = errors.server_error
