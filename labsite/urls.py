from django.urls import path

from labsite import job_views, ledger_views, pages, views

urlpatterns = [
    path("noop/", views.noop, name="noop"),
    path("email/blocking/", views.email_blocking, name="email-blocking"),
    path("email/deferred/", views.email_deferred, name="email-deferred"),
    path("tasks/<str:task_id>/", views.task_status, name="task-status"),
    # The job ledger design (labsite/ledger.py): nothing accepted is lost.
    path("email/ledger/", ledger_views.email_ledger, name="email-ledger"),
    path("jobs/<str:job_id>/", ledger_views.job_status, name="job-status"),
    path("thumbnails/blocking/", job_views.thumbnail_blocking, name="thumbnail-blocking"),
    path("thumbnails/deferred/", job_views.thumbnail_deferred, name="thumbnail-deferred"),
    path("djtasks/email/", job_views.email_djtask, name="djtask-email"),
    path("djtasks/thumbnails/", job_views.thumbnail_djtask, name="djtask-thumbnail"),
    path("djtasks/<str:result_id>/", job_views.djtask_status, name="djtask-status"),
    # The sign-up page a person sees (CSRF-protected form posts), in labsite/pages.py.
    path("signup/", pages.signup_page, name="signup"),
    path("signup/blocking/", pages.signup_blocking, name="signup-blocking"),
    path("signup/deferred/", pages.signup_deferred, name="signup-deferred"),
    path("signup/done/", pages.signup_done, name="signup-done"),
]

handler400 = views.bad_request
handler404 = views.not_found
handler500 = views.server_error
