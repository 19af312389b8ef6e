"""API-wide URL conventions: trailing slashes and one error shape for every 4xx under /api/."""

from __future__ import annotations

from http import HTTPStatus

from django.http import HttpRequest, HttpResponse
from django.urls import get_urlconf, is_valid_path

from marketing_ai.api import json_error

# Django-level 4xx (outside DRF's exception handler) get these codes in the error shape.
CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
}


def shaped_client_error(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """A non-JSON 4xx under /api/ rewritten into the API's error shape; anything else unchanged."""
    if not (400 <= response.status_code < 500) or not request.path_info.startswith("/api/"):
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response  # DRF (or a view) answered: already in the error shape
    status = response.status_code
    if status == 404:
        return json_error(404, "not_found", f"No API endpoint at {request.path}.")
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Client error"
    shaped = json_error(status, CODES.get(status, "client_error"), f"{reason}: {request.method} {request.path}.")
    for header in ("Allow", "WWW-Authenticate", "Retry-After"):
        if header in response:
            shaped[header] = response[header]
    return shaped


class ApiErrorShapeMiddleware:
    """Outermost: 4xx answers made by other middleware (e.g. a disallowed Host's 400) get the error shape."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return shaped_client_error(request, self.get_response(request))


class ApiNotFoundMiddleware:
    """Innermost: under /api/ every path answers with or without its trailing slash; unknown paths are JSON 404s.

    Django's APPEND_SLASH would answer a slash-less API path with a redirect (and a POST with an
    error), so a path that only matches with a slash is dispatched again with it: one view, two
    addresses, the same request body. Any other 4xx Django (not DRF) produced, e.g. a 405 from
    ``require_GET``, gets the API's error shape.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code == 404
            and request.path_info.startswith("/api/")
            and not request.path_info.endswith("/")
        ):
            urlconf = getattr(request, "urlconf", None) or get_urlconf()
            if not is_valid_path(request.path_info, urlconf) and is_valid_path(f"{request.path_info}/", urlconf):
                request.path_info = f"{request.path_info}/"
                request.path = f"{request.path}/"
                response = self.get_response(request)
        return shaped_client_error(request, response)
