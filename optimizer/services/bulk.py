"""Set-based inserts for the optimiser's tables: COPY on PostgreSQL, ``bulk_create`` elsewhere."""

from __future__ import annotations

import io

import pandas as pd
from django.db import connection, models

from marketing_ai.jobs import NullProgress, Progress

CHUNK = 50_000


def insert(model: type[models.Model], rows: pd.DataFrame, *, progress: Progress | None = None) -> int:
    """Insert ``rows`` (columns = the model's column names, ``*_id`` for foreign keys) into ``model``'s table."""
    progress = progress or NullProgress()
    columns = list(rows.columns)
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(model._meta.db_table)
        names = ", ".join(connection.ops.quote_name(c) for c in columns)
        with connection.cursor() as cursor:
            for start in range(0, len(rows), CHUNK):
                part = rows.iloc[start : start + CHUNK]
                buffer = io.StringIO()
                # pandas writes the text format in C; \N is COPY's NULL. Values are numbers, times and ids (no tabs).
                part.to_csv(buffer, sep="\t", header=False, index=False, na_rep="\\N")
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    copy.write(buffer.getvalue())
                progress.advance(len(part))
        return len(rows)
    for start in range(0, len(rows), CHUNK):
        part = rows.iloc[start : start + CHUNK]
        model._default_manager.bulk_create([model(**record) for record in part.to_dict("records")], batch_size=2000)
        progress.advance(len(part))
    return len(rows)
