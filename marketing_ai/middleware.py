"""API-wide URL conventions, applied after routing."""

from __future__ import annotations

from http import HTTPStatus

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


class ApiNotFoundMiddleware:
    """Under /api/: every path answers with or without its trailing slash, and every 4xx has the error shape.

    Django's APPEND_SLASH would answer a slash-less API path with a redirect (and a POST with an
    error), so a path that only matches with a slash is dispatched again with it: one view, two
    addresses, the same request body. A path that matches nothing answers the API's error shape, and
    so does any other 4xx that Django (not DRF) produced, e.g. a 405 from ``require_GET``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not (400 <= response.status_code < 500) or not request.path_info.startswith("/api/"):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response  # DRF (or a view) answered: already in the error shape
        if response.status_code != 404:
            status = response.status_code
            reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Client error"
            shaped = json_error(
                status, CODES.get(status, "client_error"), f"{reason}: {request.method} {request.path}."
            )
            for header in ("Allow", "WWW-Authenticate"):
                if header in response:
                    shaped[header] = response[header]
            return shaped
        urlconf = getattr(request, "urlconf", None) or get_urlconf()
        if not request.path_info.endswith("/") and not is_valid_path(request.path_info, urlconf):
            if is_valid_path(f"{request.path_info}/", urlconf):
                request.path_info = f"{request.path_info}/"
                request.path = f"{request.path}/"
                return self.get_response(request)
        return json_error(404, "not_found", f"No API endpoint at {request.path}.")
