"""The writers of ``import_events --jobs N``: N threads in the command's process, each with its own
database connection.

The command's reading thread parses and checks the rows (``validation.check_rows``, no database); a
writer does the rest of ``ingest_events`` for a batch (look-ups, new customers and merchants, locks,
the insert, the rollup hook), which is mostly waiting on PostgreSQL, with the GIL released. Spawned
worker processes did this before: each paid Django's set-up (3-20 s on the shared machine, more
than a 200,000-event import) and the rows were pickled across; measured at 200,000 events, --jobs 2
as threads took 6.7-10.1 s against 31 s for two spawned processes (docs/ingestion.md, "Throughput").
This module imports no model at load time.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any


class WriterThreads:
    """``jobs`` threads in this process, each writing batches on its own database connection.

    The rows are parsed and checked by the command's reading thread; what a writer does is mostly
    waiting on PostgreSQL (look-ups, the COPY, commits), during which psycopg releases the GIL. No
    process to spawn, so no Django set-up per worker. Each thread closes its connection when done.
    """

    def __init__(self, jobs: int):
        self._tasks: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._run, name=f"import-writer-{i}", daemon=True) for i in range(jobs)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        from django.db import connection

        try:
            while (task := self._tasks.get()) is not None:
                future, fn, args = task
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to whoever waits on the future
                    future.set_exception(exc)
        finally:
            connection.close()  # this thread's own connection

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        self._tasks.put((future, fn, args))
        return future

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        if cancel_futures:
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is not None:
                    task[0].cancel()
        for _ in self._threads:
            self._tasks.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


def ingest_checked_batch(checked: Any):
    """One checked batch in a writer thread (on the thread's own connection)."""
    from campaigns.services import ingest_checked

    return ingest_checked(checked, skip_invalid=True)
