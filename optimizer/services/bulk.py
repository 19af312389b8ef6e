"""Set-based inserts for the optimiser's tables through ``marketing_ai.db.copy_in``: one COPY on
PostgreSQL, ``executemany`` INSERTs elsewhere."""

from __future__ import annotations

import pandas as pd
from django.db import models

from marketing_ai.db import copy_in
from marketing_ai.jobs import NullProgress, Progress

CHUNK = 50_000


def insert(model: type[models.Model], rows: pd.DataFrame, *, progress: Progress | None = None) -> int:
    """Insert ``rows`` (columns = the model's column names, ``*_id`` for foreign keys) into ``model``'s table."""
    progress = progress or NullProgress()
    chunks = (rows.iloc[start : start + CHUNK] for start in range(0, len(rows), CHUNK))
    return copy_in(model._meta.db_table, chunks, advanced=progress.advance)
