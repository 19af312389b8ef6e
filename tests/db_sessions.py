"""A second PostgreSQL session on the test database, beside Django's own: for tests where another client
holds a lock, terminates a session or must see only committed rows."""

from __future__ import annotations

import psycopg
from django.db import connection


def other_session(*, autocommit: bool = True) -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(host=settings["HOST"] or "127.0.0.1", port=settings["PORT"] or 5432, user=settings["USER"],
                           password=settings["PASSWORD"] or None, dbname=settings["NAME"], autocommit=autocommit)
