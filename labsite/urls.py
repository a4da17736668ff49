from django.urls import path

from labsite import views

urlpatterns = [
    path("noop/", views.noop, name="noop"),
    path("email/blocking/", views.email_blocking, name="email-blocking"),
    path("email/deferred/", views.email_deferred, name="email-deferred"),
    path("tasks/<str:task_id>/", views.task_status, name="task-status"),
]

handler400 = views.bad_request
handler404 = views.not_found
handler500 = views.server_error
