"""The worker processes of ``import_events --jobs N`` (PostgreSQL).

The command cuts the file into chunks of whole records (``campaigns.ingest.files.FileChunks``: no
parsing beyond finding where records end) and N worker processes each read, check and store chunks:
the rows' parsing and checks (``chunk_batch``) and the writes (``ingest_checked``, one transaction
per chunk, on the process's own connection). Nothing but the chunk's text goes to a worker and
nothing but counts and rejected lines come back.

Why processes: the import's Python work (reading, checking, preparing the COPY) holds one GIL, so
writer threads in one process left a core idle while PostgreSQL waited for them (measured at 200,000
events on 2 cores: 80 % of the machine busy with threads, 92 % with two processes; docs/ingestion.md,
"Throughput"). The workers are forked from the command once Django is set up, before any other
thread starts: no set-up per worker (spawned workers paid 3-20 s each before) and nothing locked
at the fork. The parent's database connections are closed first, so no child shares its socket.
"""

from __future__ import annotations

import gc
import multiprocessing
import queue
import signal
import traceback
from dataclasses import dataclass, field
from typing import Any

COLLECT_EVERY = 5  # chunks between collections of the young generations (the collector is off otherwise)
POLL_SECONDS = 0.5  # how often a wait for a result checks that the workers are alive
_INHERITED: list[Any] = []  # in a worker: the connection state the fork copied (see _work)


@dataclass
class ChunkResult:
    stored: int = 0
    duplicates: int = 0
    customers_created: int = 0
    merchants_created: int = 0
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # (file line, field, reason)
    first_line: int = 0
    last_line: int = 0


class WorkerFailed(Exception):
    """A worker process raised or died; ``lines`` are the file lines of the chunk it was on, if known."""

    def __init__(self, message: str, lines: tuple[int, int] | None = None):
        super().__init__(message)
        self.lines = lines


def fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class ImportProcesses:
    """``jobs`` forked worker processes taking chunks in turn; results come back in any order.

    Create it before the process starts threads (a fork copies only the calling thread). ``close()``
    lets the workers finish their chunks and exit; ``terminate()`` stops them at once (a chunk being
    written is rolled back by PostgreSQL when its connection drops: each chunk is one transaction).
    """

    def __init__(self, jobs: int):
        from django.db import connections

        connections.close_all()  # a child must open its own connection, not share this socket
        context = multiprocessing.get_context("fork")
        self._tasks: Any = context.Queue()
        self._results: Any = context.Queue()
        self._processes = [
            context.Process(target=_work, args=(self._tasks, self._results), name=f"import-worker-{i}", daemon=True)
            for i in range(jobs)
        ]
        for process in self._processes:
            process.start()
        self._in_flight: dict[int, tuple[int, int]] = {}  # sequence number -> the chunk's lines
        self._sequence = 0

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def submit(self, chunk: Any) -> None:
        self._sequence += 1
        self._in_flight[self._sequence] = (chunk.first_line, chunk.last_line)
        self._tasks.put((self._sequence, chunk))

    def next_result(self) -> ChunkResult:
        """The next chunk's result to come back; ``WorkerFailed`` if a worker raised or died."""
        while True:
            try:
                sequence, result, failure = self._results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [p for p in self._processes if not p.is_alive()]
                if dead:
                    raise WorkerFailed(f"import worker {dead[0].name} exited with code {dead[0].exitcode}") from None
                continue
            lines = self._in_flight.pop(sequence)
            if failure is not None:
                raise WorkerFailed(failure, lines)
            return result

    def close(self) -> None:
        for _ in self._processes:
            self._tasks.put(None)
        for process in self._processes:
            process.join()
        self._tasks.close()
        self._results.close()

    def terminate(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join()
        self._tasks.cancel_join_thread()  # chunks nobody will take: do not wait to flush them
        self._tasks.close()
        self._results.close()


def _work(tasks: Any, results: Any) -> None:
    """A worker's life: chunks until None, each read, checked and stored; then its connection closed."""
    from asgiref.local import Local
    from django.db import connections

    from campaigns.ingest.files import chunk_batch
    from campaigns.services import ingest_checked

    # This process opens its own connection: whatever connection objects the fork copied (the parent's
    # closed one, or another thread's) are never used or closed here, since an open one would share
    # its socket with the parent. They stay referenced (never finalized: the process ends with
    # os._exit), so nothing is sent on a socket that is not this process's.
    handler: Any = connections  # its per-thread storage is not in the type stubs
    _INHERITED.append(handler._connections)
    handler._connections = Local(handler.thread_critical)
    # Ctrl-C reaches the whole process group: the command stops the workers itself (``terminate``).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()  # as in the one-process import: the rows are acyclic and freed by reference counting
    done = 0
    try:
        while (task := tasks.get()) is not None:
            sequence, chunk = task
            try:
                batch = chunk_batch(chunk)
                result = ChunkResult(rejects=list(batch.bad_lines), first_line=chunk.first_line, last_line=chunk.last_line)
                if batch.checked is not None:
                    stored = ingest_checked(batch.checked, skip_invalid=True)
                    result.stored, result.duplicates = stored.stored, stored.duplicates
                    result.customers_created, result.merchants_created = stored.customers_created, stored.merchants_created
                    result.rejects.extend((batch.lines[e.index], e.field, e.reason) for e in stored.rejected)
                results.put((sequence, result, None))
            except Exception as exc:  # noqa: BLE001 (reported to the command, which stops the import)
                results.put((sequence, None, "".join(traceback.format_exception_only(exc)).strip()))
            done += 1
            if done % COLLECT_EVERY == 0:
                gc.collect(1)
    finally:
        connections.close_all()
