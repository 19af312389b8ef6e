from __future__ import annotations

from marketing_ai.api import json_error


class ApiNotFoundMiddleware:
    """Django's own 404 (no route matched) under /api/ answers in the API's error shape, not HTML."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code == 404
            and request.path.startswith("/api/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return json_error(404, "not_found", f"No API endpoint at {request.path}.")
        return response
