"""API conventions shared by every app: one error shape, roles, pagination (addresses: ``marketing_ai.routing``).

Every 4xx answers ``{"error": {"code": ..., "message": ..., "fields": {...}}}``.
Services raise the domain's errors (``marketing_ai.errors``: ``InvalidInput`` 400, ``NotFound`` 404,
``Conflict`` 409); ``exception_handler`` below is the one place that maps them (and DRF's and Django's
own errors) to that shape. Views never build error JSON by hand.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404, JsonResponse
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.response import Response
from rest_framework.utils import json

from marketing_ai import validation
from marketing_ai.errors import Conflict, DomainError, InvalidInput, NotFound, first_reason

# The names views have always raised: the domain's errors (``marketing_ai.errors``), mapped below.
BadRequest = InvalidInput

logger = logging.getLogger(__name__)

MARKETER = "marketer"
VIEWER = "viewer"
INGEST = "ingest"  # service accounts that may only send events


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def body_limit() -> int:
    """The largest request body accepted, in bytes (``DATA_UPLOAD_MAX_MEMORY_SIZE``)."""
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def too_large_message(size: int | None = None) -> str:
    got = f" (got {size:,} bytes)" if size else ""
    return f"The request body is over the limit of {body_limit():,} bytes{got}; send smaller batches."


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten(v) for v in detail]
    return str(detail)


def _message(detail: Any, fields: dict) -> str:
    if isinstance(detail, (str, exceptions.ErrorDetail)):
        return str(detail)
    return first_reason(fields)


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


# The one mapping of the domain's errors to HTTP: the most specific class listed wins.
DOMAIN_STATUS: dict[type[DomainError], int] = {
    InvalidInput: status.HTTP_400_BAD_REQUEST,
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
}


def domain_status(exc: DomainError) -> int:
    return next((DOMAIN_STATUS[cls] for cls in type(exc).__mro__ if cls in DOMAIN_STATUS), status.HTTP_400_BAD_REQUEST)


def exception_handler(exc: Exception, context: dict) -> Any:
    """Every error a view lets out, in the one shape: the domain's errors, DRF's and Django's."""
    from rest_framework.views import exception_handler as drf_exception_handler  # DRF's views import this module
    from rest_framework.views import set_rollback

    if isinstance(exc, DataError):
        # The last line of defence: a value the validators let through but the database refused
        # (a number out of a column's range, text it cannot store). The client's input, so a 400.
        logger.warning("database refused a value: %s", exc)
        exc = InvalidInput("a value is out of the range the database can store")
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.fields), status=domain_status(exc))
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(too_large_message())

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    fields: dict = {}
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(detail) if isinstance(detail, dict) else {"non_field_errors": _flatten(detail)}
        code = "invalid"
        message = _message(detail, fields)
    else:
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        if isinstance(code, dict):
            code = "error"
        raw = detail.get("detail", detail) if isinstance(detail, dict) else detail
        message = str(raw)
    response.data = error_body(str(code), message, fields)
    return response


def json_error(status_code: int, code: str, message: str) -> JsonResponse:
    """Django-level (non-DRF) errors in the same shape, e.g. the API's 404 handler."""
    return JsonResponse(error_body(code, message), status=status_code)


class RolePermission(permissions.BasePermission):
    """Authenticated users read; writes need the ``marketer`` group (or superuser).

    Members of ``ingest`` (service accounts) may only call views that set ``ingest_allowed = True``.
    """

    message = "Your role may not do this: writes need the 'marketer' role."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        refusal = role_refusal(user, request.method, ingest_allowed=getattr(view, "ingest_allowed", False))
        if refusal:
            self.message = refusal
            return False
        return True


def role_refusal(user, method: str, *, ingest_allowed: bool = False) -> str | None:
    """Why this authenticated user's role may not make this request (``None``: it may).

    The one rule of roles, for the API (``RolePermission``) and the dashboard pages
    (``marketing_ai.middleware.PageRoleMiddleware``) alike.
    """
    if user.is_superuser:
        return None
    groups = _group_names(user)
    if ingest_allowed and INGEST in groups:
        return None
    if groups == {INGEST}:
        return "This service account may only send events."
    if method in permissions.SAFE_METHODS or MARKETER in groups:
        return None
    return RolePermission.message


def _group_names(user) -> set[str]:
    cached = getattr(user, "_marketing_ai_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._marketing_ai_groups = cached
    return cached


def is_marketer(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or MARKETER in _group_names(user)))


class WholeBodyJSONParser(JSONParser):
    """DRF's JSONParser, decoding the body in one call instead of through a ``codecs`` stream reader.

    For a 5,000-event batch (1 MB) the stream reader cost as much again as the JSON parse itself
    (6.5 ms against 3.5 ms); the result and the errors are DRF's (strict: no NaN or Infinity).
    It also holds every JSON body to ``marketing_ai.validation``'s limits: at most
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (413, read no further), nesting depth, storable text and
    64-bit integers (400), so no view meets a value the database or Python cannot take.
    """

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = get_encoding(parser_context or {})  # DRF's check: text encodings only
        limit = body_limit()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(too_large_message())
        try:
            text = raw.decode(encoding)
            ints = validation.JsonInts()  # integers checked as parsed: the text scan then skips them
            data = json.loads(text, parse_constant=json.strict_constant if self.strict else None, parse_int=ints)
            validation.check_json(data, text, ints_in_range=not ints.out_of_range)
        except RecursionError:
            raise exceptions.ParseError(
                f"JSON parse error - nested deeper than {validation.MAX_JSON_DEPTH} levels"
            ) from None
        except ValueError as exc:  # UnicodeDecodeError and validation.BadJSON are ones too
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        return data


@extend_schema_field({"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$", "example": "09:30"})
class ClockTimeField(serializers.TimeField):
    """A time of day on the wire as ``HH:MM`` (``HH:MM:SS`` also read), and so in the OpenAPI schema:
    a string with that pattern, not OpenAPI's ``time`` format (which demands seconds and an offset)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("format", "%H:%M")
        kwargs.setdefault("input_formats", ["%H:%M", "%H:%M:%S"])
        super().__init__(**kwargs)


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF's CharField would turn a number into its text (``7`` -> ``"7"``), so an id
    sent as a number would be looked up instead of refused."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class Pagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` (1-1000); a value that is not a positive whole number (an empty one
    included) is a 400 (DRF would silently fall back to the default, answering a page the client did not ask for)."""

    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise BadRequest({self.page_size_query_param: [f"a whole number from 1 to {self.max_page_size}"]})
        return super().get_page_size(request)

    def paginate_queryset(self, queryset, request, view=None):
        raw = request.query_params.get(self.page_query_param)
        if raw not in (None, "last") and not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise BadRequest({self.page_query_param: ["a page number from 1"]})
        return super().paginate_queryset(queryset, request, view)
