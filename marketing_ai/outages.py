"""What the web tier answers while a dependency (PostgreSQL, Redis) is down: a fast 503, never a 500.

A request that meets a lost database connection (a PostgreSQL restart, a failover) or a database
that refuses connections gets ``503`` with ``Retry-After`` (in the API's error shape under
``/api/``). Django marks the connection as failed and closes it when the request ends, so the next
request opens a new one; with ``CONN_HEALTH_CHECKS`` a connection the server dropped while idle is
replaced before its first use in a request. Raw psycopg work goes through ``marketing_ai.db`` so
that it keeps both guards.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from rest_framework import exceptions, status

from marketing_ai.api import json_error

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class ServiceUnavailable(exceptions.APIException):
    """A dependency the request needs (the queue, the database) is unavailable right now: 503."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "service_unavailable"
    default_detail = "A service this request needs is unavailable; try again shortly."
    wait = RETRY_AFTER_SECONDS  # DRF sends it as Retry-After


def database_unavailable(request, exc: Exception) -> HttpResponse:
    message = "The database is unavailable; try again shortly."
    if request.path_info.startswith("/api/"):
        response = json_error(503, "database_unavailable", message)
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """A lost or refused database connection (Django's OperationalError / InterfaceError) is a 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc: Exception) -> HttpResponse | None:
        if isinstance(exc, (OperationalError, InterfaceError)):
            log.warning("database unavailable during %s %s: %s", request.method, request.path, exc)
            return database_unavailable(request, exc)
        return None
