"""Sharing one job run's parts with idle Celery workers, so more workers finish a long run sooner.

A job that splits its work into independent, idempotent parts (the daily aggregation's day chunks;
``send_times`` and ``merchant_affinity``'s customer ranges, staged and swapped in by
``optimizer.services.staging``) calls ``run_parts``. The run that holds the job's lock (the *owner*) posts the parts on a board in
Redis, sends ``JOB_FANOUT_HELPERS`` helper tasks (``marketing_ai.fanout_help``) and then works through
the board itself; each helper takes parts from the same board until it is empty. The owner returns
when every part is done, so the job's lock, its ``job_runs`` row and its result mean what they mean
without fan-out.

Why a board the owner also works, not a Celery chord: the owner never waits for a task that may not
start (all worker processes busy, no worker consuming the queue, the broker restarted), so a run
cannot deadlock; a part whose helper died (or failed) is done again by the owner after
``JOB_FANOUT_PART_TIMEOUT`` seconds — parts are idempotent upserts, so doing one twice writes the
same rows, and rows are counted once. Without a broker (the demo), with ``JOB_FANOUT_HELPERS = 0``
(the default) or with one part, the parts run one after another in the owner, exactly as before.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

PartWorker = Callable[[dict[str, Any]], int]
PART_WORKERS: dict[str, PartWorker] = {}
BOARD_TTL_SECONDS = 24 * 3600  # a board whose owner died expires; helpers then find nothing to do


def register_part_worker(name: str, func: PartWorker) -> None:
    """Make ``func(spec) -> rows written`` the way to do one part of ``name`` (each app's ``register_jobs``
    calls this, so every process — the job's and its helpers' — knows the same part workers)."""
    existing = PART_WORKERS.get(name)
    # The same function again (a second django.setup, a reloaded module) replaces it; another one is an error.
    if existing is not None and (existing.__module__, existing.__qualname__) != (func.__module__, func.__qualname__):
        raise RuntimeError(f"part worker {name!r} registered twice ({existing.__qualname__}, {func.__qualname__})")
    PART_WORKERS[name] = func


def helpers_configured() -> int:
    """Helper tasks a run may send: 0 without a broker (tasks would run eagerly in this process)."""
    if settings.CELERY_TASK_ALWAYS_EAGER or not settings.REDIS_URL:
        return 0
    return max(0, int(settings.JOB_FANOUT_HELPERS))


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Board:
    """The parts of one run in Redis: a list of part numbers to do, and hashes of who took and finished which."""

    def __init__(self, client: Any, key: str) -> None:
        self.client, self.key = client, key
        self.todo, self.specs, self.taken, self.done, self.failed = (
            f"{key}:{part}" for part in ("todo", "specs", "taken", "done", "failed")
        )

    def post(self, name: str, specs: Sequence[dict[str, Any]]) -> None:
        pipe = self.client.pipeline()
        pipe.set(self.specs, json.dumps({"name": name, "specs": list(specs)}))
        pipe.rpush(self.todo, *range(len(specs)))
        for k in (self.specs, self.todo):
            pipe.expire(k, BOARD_TTL_SECONDS)
        pipe.execute()

    def load(self) -> tuple[str, list[dict[str, Any]]] | None:
        raw = self.client.get(self.specs)
        if raw is None:
            return None
        posted = json.loads(raw)
        return posted["name"], posted["specs"]

    # Pop a part and record who took it in one step: a helper that dies between the two cannot lose a part.
    TAKE = """
    local index = redis.call('LPOP', KEYS[1])
    if index then
        redis.call('HSET', KEYS[2], index, ARGV[1])
        redis.call('EXPIRE', KEYS[2], ARGV[2])
    end
    return index
    """

    def take(self) -> int | None:
        raw = self.client.eval(self.TAKE, 2, self.todo, self.taken, f"{_me()}|{time.time()}", BOARD_TTL_SECONDS)
        return None if raw is None else int(raw)

    def finish(self, index: int, rows: int) -> None:
        # HSETNX: a part done twice (a slow helper and the owner) counts its rows once.
        self.client.hsetnx(self.done, index, json.dumps({"rows": rows, "by": _me()}))
        self.client.expire(self.done, BOARD_TTL_SECONDS)

    def fail(self, index: int, reason: str) -> None:
        self.client.hset(self.failed, index, reason[:500])
        self.client.expire(self.failed, BOARD_TTL_SECONDS)

    def finished(self) -> dict[int, dict[str, Any]]:
        return {int(k): json.loads(v) for k, v in self.client.hgetall(self.done).items()}

    def orphaned(self, timeout: float, finished: dict[int, Any]) -> list[int]:
        """Parts a helper took but did not finish: it failed, or it has been at it longer than ``timeout``."""
        failed = {int(k) for k in self.client.hkeys(self.failed)}
        now, late = time.time(), []
        for k, v in self.client.hgetall(self.taken).items():
            index = int(k)
            if index in finished:
                continue
            taken_at = float(v.decode().rsplit("|", 1)[1])
            if index in failed or now - taken_at > timeout:
                late.append(index)
        return sorted(late)

    def clear(self) -> None:
        self.client.delete(self.todo, self.specs, self.taken, self.done, self.failed)


def run_parts(
    name: str,
    specs: Sequence[dict[str, Any]],
    *,
    advance: Callable[[int], None] | None = None,
    helpers: int | None = None,
    redo_slow: float = 0,
) -> int:
    """Do every part of ``specs`` with the worker registered as ``name``; returns the rows written.

    ``advance(n)`` is called as parts finish (here or in a helper), for a progress bar: ``n`` is the
    finished parts' ``weight`` (a spec's optional key, default 1), e.g. the days of a chunk.
    ``redo_slow``: when > 0 and nothing is left to take, a part a helper has held longer than
    ``redo_slow`` times this run's slowest own part (and at least a second) is done here too, instead of
    waiting up to ``JOB_FANOUT_PART_TIMEOUT`` (a fresh helper process loading its libraries, a slow
    machine). Only for parts whose doing twice at the same moment is harmless (staged attempts,
    ``optimizer.services.staging``); two concurrent upserts of the same rows could deadlock.
    """
    work = PART_WORKERS[name]
    advance = advance or (lambda n: None)
    helpers = helpers_configured() if helpers is None else helpers
    if helpers <= 0 or len(specs) < 2:
        written = 0
        for spec in specs:
            written += work(spec)
            advance(int(spec.get("weight", 1)))
        return written

    from marketing_ai.jobs import redis_client

    board = Board(redis_client(), f"marketing_ai:fanout:{name}:{uuid.uuid4().hex}")
    board.post(name, specs)
    try:
        _send_helpers(board, min(helpers, len(specs) - 1))
        return _own_run(board, work, specs, advance, redo_slow)
    finally:
        board.clear()


def _send_helpers(board: Board, count: int) -> None:
    from marketing_ai.tasks import fanout_help

    for _ in range(count):
        try:
            fanout_help.apply_async(kwargs={"board": board.key}, queue=settings.JOB_FANOUT_QUEUE or None)
        except Exception as exc:  # the broker refused: this run does the parts itself
            log.warning("fan-out %s: could not send a helper (%s); continuing alone", board.key, exc)
            return


def _own_run(board: Board, work: PartWorker, specs: Sequence[dict[str, Any]], advance: Callable[[int], None],
             redo_slow: float = 0) -> int:
    reported: set[int] = set()
    own: list[float] = []  # seconds this run took for each of its own parts

    def report(finished: dict[int, Any]) -> None:
        new = finished.keys() - reported
        if new:
            advance(sum(int(specs[i].get("weight", 1)) for i in new))
            reported.update(new)

    while True:
        index = board.take()
        if index is not None:
            began = time.monotonic()
            board.finish(index, work(specs[index]))
            own.append(time.monotonic() - began)
        else:
            finished = board.finished()
            if len(finished) == len(specs):
                report(finished)
                return sum(int(d["rows"]) for d in finished.values())
            orphans = board.orphaned(settings.JOB_FANOUT_PART_TIMEOUT, finished)
            if not orphans and redo_slow > 0 and own:
                orphans = board.orphaned(max(1.0, redo_slow * max(own)), finished)[:1]
            for orphan in orphans:
                log.warning("fan-out %s: part %d was not finished by its helper; doing it here", board.key, orphan)
                board.finish(orphan, work(specs[orphan]))
            if not orphans:
                time.sleep(0.05)  # parts still being done by helpers
        report(board.finished())


def help_with(board_key: str) -> int:
    """A helper's side: take parts from the board until it is empty; returns how many this helper did."""
    from marketing_ai.jobs import redis_client

    board = Board(redis_client(), board_key)
    posted = board.load()
    if posted is None:
        return 0  # the run finished (or expired) before this helper started
    name, specs = posted
    work = PART_WORKERS[name]
    did = 0
    while (index := board.take()) is not None:
        try:
            rows = work(specs[index])
        except Exception as exc:  # the owner does this part again and reports its error, if any
            log.exception("fan-out %s: part %d failed in a helper", board_key, index)
            board.fail(index, f"{type(exc).__name__}: {exc}")
            return did
        board.finish(index, rows)
        did += 1
        log.info("fan-out %s: part %d done here (%d rows)", board_key, index, rows)
    return did
