"""An optional read replica for the analytics reads (``DATABASE_REPLICA_URL``).

Analytics pages and the analytics API only read aggregates, which a streaming replica serves as well
as the primary, a few seconds late. So a GET or HEAD request under one of ``REPLICA_READ_PATHS`` reads
the models of ``REPLICA_READ_APPS`` from the ``replica`` alias; everything else — every write, every
job, every other request, and the reads that must see the latest state (tokens, sessions, users,
permissions, A/B assignment) — uses the primary. Without ``DATABASE_REPLICA_URL`` none of this is
installed and every query goes to the primary.

The choice is made per request (a context variable set by the middleware), not per model, because
the same model (a campaign) is read for a dashboard, where a few seconds of lag are harmless, and for
an apply workflow, where they are not.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import models
from django.http import HttpRequest, HttpResponse

REPLICA = "replica"

_reading_from_replica: contextvars.ContextVar[bool] = contextvars.ContextVar("reading_from_replica", default=False)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


@contextmanager
def replica_reads() -> Iterator[None]:
    """Within this block, reads of ``REPLICA_READ_APPS`` models go to the replica (if one is configured)."""
    token = _reading_from_replica.set(replica_configured())
    try:
        yield
    finally:
        _reading_from_replica.reset(token)


class ReadReplicaRouter:
    """Routes the analytics reads of a replica-read request to ``replica``; the primary for all else."""

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        if _reading_from_replica.get() and model._meta.app_label in settings.REPLICA_READ_APPS:
            return REPLICA
        return None  # the primary ("default")

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return None  # writes always go to the primary

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # The replica holds the primary's rows: an object read from either may refer to the other.
        return True

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        # The replica receives the schema by replication; `migrate --database replica` does nothing.
        return False if db == REPLICA else None


class ReplicaReadsMiddleware:
    """Marks GET/HEAD requests under ``REPLICA_READ_PATHS`` as replica reads (installed only with a replica)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefixes = tuple(settings.REPLICA_READ_PATHS)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD") and request.path.startswith(self.prefixes):
            with replica_reads():
                return self.get_response(request)
        return self.get_response(request)
