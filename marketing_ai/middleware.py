"""Request-path conventions: trailing slashes, one error shape for every 4xx and 5xx under /api/,
and the guard that refuses bytes no view can handle before any view runs."""

from __future__ import annotations

from http import HTTPStatus

from django.core.exceptions import BadRequest as DjangoBadRequest
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from rest_framework import exceptions as drf_exceptions

from marketing_ai import errors, throttles, validation
from marketing_ai.api import body_limit, json_error, role_refusal, too_large_message

# Django-level 4xx (outside DRF's exception handler) get these codes in the error shape.
CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "throttled",
}


def shaped_client_error(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """A non-JSON 4xx or 5xx under /api/ rewritten into the API's error shape; anything else unchanged.

    A 5xx keeps no detail of the failure (Django has logged it with its traceback already).
    """
    if not (400 <= response.status_code < 600) or not request.path_info.startswith("/api/"):
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response  # DRF (or a view) answered: already in the error shape
    status = response.status_code
    if status >= 500:
        shaped = json_error(status, "server_error", "The server failed to answer this request; the failure is logged.")
        if "Retry-After" in response:
            shaped["Retry-After"] = response["Retry-After"]
        return shaped
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
    """Innermost: under /api/ unknown paths are JSON 404s, and any other 4xx Django (not DRF) produced,
    e.g. a 405 from ``require_GET``, gets the API's error shape.

    (Trailing slashes are the URL map's business: every API address is routed with or without one,
    ``marketing_ai.routing.Router`` and ``api_path``.)
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return shaped_client_error(request, self.get_response(request))


class RequestGuardMiddleware:
    """Refuse what no view can handle, for pages and the API alike, before any view runs.

    - a path or query string holding NUL, another control character or (after decoding) a lone
      surrogate: 400 (PostgreSQL cannot even compare such a string, so every lookup would be a 500);
      the same in a page's or the admin's POSTed form fields (API bodies: the JSON parser checks them);
    - a body whose Content-Length is over ``DATA_UPLOAD_MAX_MEMORY_SIZE``: 413 naming the limit
      (a body without a length is cut at the limit by the JSON parser, with the same 413);
    - a dashboard page's view letting out a domain error (``marketing_ai.errors``) or one of DRF's
      (``NotFound``, ``PermissionDenied``, ``ValidationError``): Django's 404, 403 or 400 page instead of a 500.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        problem = self._bad_address(request)
        if problem:
            return self._refuse(request, 400, "bad_request", problem)
        length = request.META.get("CONTENT_LENGTH") or ""
        if length.isascii() and length.isdigit() and int(length) > body_limit():
            return self._refuse(request, 413, "payload_too_large", too_large_message(int(length)))
        if request.method == "POST" and not request.path_info.startswith("/api/"):
            try:
                problem = self._bad_form(request)
            except RequestDataTooBig:
                return self._refuse(request, 413, "payload_too_large", too_large_message())
            if problem:
                return self._refuse(request, 400, "bad_request", problem)
        return self.get_response(request)

    @staticmethod
    def _bad_form(request: HttpRequest) -> str | None:
        """A page or admin form (the login forms too) whose fields hold text no column can store."""
        try:
            for key, values in request.POST.lists():
                for text in (key, *values):
                    problem = validation.text_problem(text)
                    if problem:
                        return f"The form field {key[:40]!r} {problem}."
        except RequestDataTooBig:
            raise
        except Exception as exc:  # e.g. TooManyFieldsSent, a malformed multipart body
            return f"The form cannot be read: {exc}"
        return None

    @staticmethod
    def _bad_address(request: HttpRequest) -> str | None:
        problem = validation.text_problem(request.path_info)
        if problem:
            return f"The path {problem}."
        try:
            items = request.GET.lists()
            for key, values in items:
                if "[" in key and request.path_info.startswith("/api/"):
                    # The API's parameters are plain names: page[x]=1 is not a page number (it was ignored).
                    return f"The query parameter {key[:40]!r} is not a plain name; the API takes no nested parameters."
                for text in (key, *values):
                    problem = validation.text_problem(text)
                    if problem:
                        return f"The query parameter {key[:40]!r} {problem}."
        except Exception as exc:  # e.g. TooManyFieldsSent
            return f"The query string cannot be read: {exc}"
        return None

    @staticmethod
    def _refuse(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
        if request.path_info.startswith("/api/"):
            return json_error(status, code, message)
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")

    def process_exception(self, request: HttpRequest, exc: Exception):
        if isinstance(exc, RequestDataTooBig):
            return self._refuse(request, 413, "payload_too_large", too_large_message())
        if request.path_info.startswith("/api/"):
            return None  # DRF's handler (and the error shape for anything else) decides
        if isinstance(exc, errors.NotFound):
            raise Http404(exc.message) from exc
        if isinstance(exc, errors.DomainError):  # bad input or a conflict: the page's 400
            raise DjangoBadRequest(exc.message) from exc
        if isinstance(exc, drf_exceptions.NotFound):
            raise Http404(str(exc.detail)) from exc
        if isinstance(exc, (drf_exceptions.PermissionDenied, drf_exceptions.NotAuthenticated)):
            raise PermissionDenied(str(exc.detail)) from exc
        if isinstance(exc, (drf_exceptions.ValidationError, drf_exceptions.ParseError)):
            raise DjangoBadRequest(str(exc.detail)) from exc
        return None


# Paths with their own access rules: the API (RolePermission), the admin (staff and model permissions),
# login/logout, static files and the health checks.
PAGE_ROLE_EXEMPT = ("/api/", "/admin/", "/accounts/", "/static/", "/healthz", "/readyz")


class PageRoleMiddleware:
    """Dashboard pages follow the API's roles (``marketing_ai.api.role_refusal``): an ``ingest`` service
    account that can log in still reads no page (403), and page writes need the ``marketer`` role."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if request.path_info.startswith(PAGE_ROLE_EXEMPT):
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None  # the page's login_required sends it to the login form
        refusal = role_refusal(user, request.method)
        if refusal:
            raise PermissionDenied(refusal)
        return None


# Page writes with their own limits: the API (DRF's throttles), the login forms (django-axes locks out
# failed logins), logout, static files and the health checks.
PAGE_THROTTLE_EXEMPT = ("/api/", "/accounts/", "/admin/login/", "/admin/logout/", "/static/", "/healthz", "/readyz")
SCOPE_LABELS = {"write": "changes", "jobs": "job runs"}


class PageThrottleMiddleware:
    """Dashboard form writes (every POST/PUT/PATCH/DELETE to a page or the admin) are rate-limited like
    the API's writes: the same scopes, rates and counters (``marketing_ai.throttles``), per user and
    per client IP. A view marked ``@page_throttle_scope("jobs")`` (a button that runs a job) counts
    in the ``jobs`` scope. Over the limit: 429 with ``Retry-After`` and a page saying when to retry;
    the view does not run, so nothing is written. Placed after ``PageRoleMiddleware``: a refused
    role is a 403 and not counted."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if request.method in throttles.SAFE_METHODS or request.path_info.startswith(PAGE_THROTTLE_EXEMPT):
            return None
        scope = getattr(view_func, "throttle_scope", None) or "write"
        retry_after = throttles.page_write_retry_after(request, scope)
        if retry_after is None:
            return None
        back = request.META.get("HTTP_REFERER", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
            back = "/"
        response = render(request, "429.html", {
            "retry_after": retry_after,
            "scope_label": SCOPE_LABELS.get(scope, "requests"),
            "what": "job run" if scope == "jobs" else "change",
            "back": back,
        }, status=429)
        response["Retry-After"] = str(retry_after)
        return response
