"""Raw psycopg access under Django's connection, with Django's guards kept.

COPY and server-bound array parameters need the psycopg cursor itself, but a cursor taken from
``connection.connection`` (or ``cursor.cursor``) bypasses two things Django does for every
``connection.cursor()``: the health check once per request (a connection the server dropped, e.g.
after a PostgreSQL restart, is replaced before use) and error wrapping (a failure arrives as
``django.db.OperationalError`` and marks the connection, so Django closes it when the request ends
instead of handing the dead connection to the next request). ``psycopg_cursor`` keeps both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


@contextmanager
def psycopg_cursor(*, server_binding: bool = False) -> Iterator[psycopg.Cursor]:
    """PostgreSQL: a psycopg 3 cursor on Django's connection (health-checked, errors wrapped).

    ``server_binding``: parameters are bound by the server (a 5,000-id array travels as one
    parameter instead of being quoted into the SQL text by Django's client-side cursor).
    """
    with connection.cursor() as django_cursor, connection.wrap_database_errors:
        if server_binding:
            with psycopg.Cursor(connection.connection) as cursor:
                yield cursor
        else:
            yield django_cursor.cursor
