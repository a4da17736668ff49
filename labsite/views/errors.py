"""Django's handler400/404/500: a JSON body like every other refusal, never Django's HTML page."""

from labsite.views.common import json_error


def bad_request(request, exception=None):
    return json_error(400, "bad request")


def not_found(request, exception=None):
    return json_error(404, "no such endpoint")


def server_error(request):
    return json_error(500, "internal error")
