"""Fan-out of the per-customer optimiser jobs (``send_times``, ``merchant_affinity``): parts, staging, one swap.

With ``JOB_FANOUT_HELPERS`` (``marketing_ai.fanout``), a run splits its customers into ranges of customer
pks, ``PARTS_PER_PROCESS`` per process. Each part reads only its customers' features, scores them with
the same pure function as the one-process run, and writes its rows into the job's staging table (UNLOGGED
on PostgreSQL), tagged with the run, the part and the attempt. When every part is done, the run replaces
the real table with the staged rows in ONE transaction, so readers see the old table or the new one,
never half of either; the staged rows of the run are then deleted.

Why it equals the one-process run: every row depends on its own customer's history, the model artifact
and the run's moment only; the run records the model version it resolved (``model``: an ``ml_models`` pk)
and its moment (``now``) in each part's spec, so a part never scores with "whatever is active" when it
happens to run, and the per-row maths does not depend on which other customers are scored with it.

Why attempts: a part whose helper died after writing (or a slow helper and the run, both) leaves two
complete attempts of the same rows (each attempt is written in one transaction: all or nothing); the
swap takes one attempt per part (the smallest id), so no row is staged twice into the real table. An
attempt that commits after the swap is left with its run's id and deleted by the job's next run, which
empties the staging table first (one run of a job works at a time: the job's lock). No index on the
staging tables: the swap reads all of it, and each index would cost every part's write.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, models, transaction

from marketing_ai import db, fanout
from marketing_ai.jobs import Progress
from optimizer import features
from optimizer.models import MLModel, StagedRow
from optimizer.services import bulk

log = logging.getLogger(__name__)

# Each part reads the events of its customers; the events have no customer index (ingestion pays for every
# index), so each part scans them: few parts per process, not the aggregation's four.
PARTS_PER_PROCESS = 2
# A part a helper has held this many times longer than the run's own slowest part is done by the run too.
REDO_SLOW = 3.0


def pk_ranges(pks: Sequence[int] | np.ndarray, parts: int) -> list[tuple[int, int, int]]:
    """Sorted customer ``pks`` as at most ``parts`` ranges ``(lo, hi, customers)`` (both ends included).

    Every pk is in exactly one range, ranges do not overlap, are in order, and differ by at most one
    customer in size. Pure: no database.
    """
    values = np.unique(np.asarray(pks, dtype=np.int64))
    if len(values) == 0:
        return []
    pieces = np.array_split(values, max(1, min(int(parts), len(values))))
    return [(int(p[0]), int(p[-1]), len(p)) for p in pieces]


def customer_ranges(parts: int) -> list[tuple[int, int, int]]:
    """The customers of this moment as ``pk_ranges``."""
    pks = features.customer_pks()
    return pk_ranges(pks, parts)


def part_specs(*, run: str, model: MLModel, now: dt.datetime, ranges: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """The board's specs of one run: what every part must agree on (run, model version, moment) and its range."""
    return [
        {"run": run, "part": i, "lo": lo, "hi": hi, "model": model.pk, "now": now.isoformat(), "weight": count}
        for i, (lo, hi, count) in enumerate(ranges)
    ]


def spec_moment(spec: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(spec["now"])


def spec_model(spec: dict[str, Any]) -> MLModel:
    """The model version the run resolved when it started (not the one active now)."""
    return MLModel.objects.get(pk=spec["model"])


def stage(stage_model: type[StagedRow], spec: dict[str, Any], rows: pd.DataFrame) -> int:
    """Write one attempt of one part: its rows, tagged with run, part and a new attempt id, in one transaction."""
    if rows.empty:
        return 0
    tagged = rows.assign(run=spec["run"], part=int(spec["part"]), attempt=uuid.uuid4().hex)
    with transaction.atomic():
        return bulk.insert(stage_model, tagged)


def swap(target: type[models.Model], stage_model: type[StagedRow], run: str, order_by: Sequence[str]) -> int:
    """Replace every row of ``target`` by the run's staged rows (one attempt per part), in one transaction.

    ``order_by``: the real table's row order as the one-process run writes it (ids in the same order).
    Returns the rows written. The staging table is emptied afterwards (it holds this run's rows only).
    """
    q = connection.ops.quote_name
    columns = [str(f.column) for f in target._meta.concrete_fields if not f.primary_key]
    staged = q(stage_model._meta.db_table)
    sql = (
        f"INSERT INTO {q(target._meta.db_table)} ({', '.join(q(c) for c in columns)}) "
        f"SELECT {', '.join('s.' + q(c) for c in columns)} FROM {staged} s "
        f"JOIN (SELECT part, MIN(attempt) AS attempt FROM {staged} WHERE run = %s GROUP BY part) w "
        f"ON s.part = w.part AND s.attempt = w.attempt "
        f"WHERE s.run = %s ORDER BY {', '.join('s.' + q(c) for c in order_by)}"
    )
    with transaction.atomic():
        target._default_manager.all().delete()
        with connection.cursor() as cursor:
            cursor.execute(sql, [run, run])
            written = cursor.rowcount
    # One run of a job at a time (the job's lock): the staging table holds this run's rows only.
    db.empty_table(stage_model._meta.db_table)
    return int(written)


def run_in_parts(
    *,
    part_worker: str,
    target: type[models.Model],
    stage_model: type[StagedRow],
    order_by: Sequence[str],
    model: MLModel,
    now: dt.datetime,
    progress: Progress,
    helpers: int,
    parts: int | None = None,
) -> int:
    """One fanned-out run: plan the parts, let ``marketing_ai.fanout`` do them (here and in helpers), swap.

    ``parts``: how many (default ``PARTS_PER_PROCESS`` per process). With ``helpers=0`` the parts run one
    after another in this process (the tests use that on SQLite; the result is the same).
    """
    run = uuid.uuid4().hex
    ranges = customer_ranges(parts or PARTS_PER_PROCESS * (helpers + 1))
    progress.total(sum(count for _, _, count in ranges) + 1)  # a step per customer, +1: the swap
    # Rows of a run that died before its swap (only one run of a job works at a time: the job's lock).
    db.empty_table(stage_model._meta.db_table)
    specs = part_specs(run=run, model=model, now=now, ranges=ranges)
    try:
        # A helper much slower than this run (a fresh process loading scikit-learn and the model): its part is
        # done here too rather than waited for; the swap takes one attempt of it.
        fanout.run_parts(part_worker, specs, advance=progress.advance, helpers=helpers, redo_slow=REDO_SLOW)
        written = swap(target, stage_model, run, order_by)
    except Exception:
        try:  # the real table is untouched; leave no staged rows behind either
            db.empty_table(stage_model._meta.db_table)
        except Exception:
            log.exception("fan-out run %s: could not delete its staged rows (the next run will)", run)
        raise
    progress.advance(1)
    return written
