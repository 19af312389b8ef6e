"""Worker processes of ``import_events --jobs N``.

They are spawned, not forked: a fork copies whatever the parent's other threads held at that moment
(a live server, a driver's event loop, a half-used connection) and can hang the child. A spawned child
sets Django up itself, then points its connection at the parent's database (which, under tests, is the
test database rather than the one named by DATABASE_URL). This module imports no model at load time.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def _init(database_name: str) -> None:
    import django

    django.setup()
    from django.db import connections

    connections["default"].settings_dict["NAME"] = database_name


def ingest_batch(batch: list[Any]):
    """One batch in a worker process: it has its own database connection (opened on first use)."""
    from campaigns.services import ingest_events

    return ingest_events(batch, skip_invalid=True)


def pool(jobs: int) -> ProcessPoolExecutor:
    from django.db import connection

    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init,
        initargs=(connection.settings_dict["NAME"],),
    )
