"""The A/B analysis' rollup: what ``selectors.evaluate`` needs, kept up to date as data arrives.

Reading a test's raw events at analysis time costs a join of every event of its campaign to every
assignment (seconds at 1M assignments, docs/BENCHMARKS.md). Instead two small tables are maintained in
the same transaction as the write that changes them:

- ``ab_test_customer_outcomes``: per assigned customer and event type (conversion, open, click), the
  in-test value y and the pre-period covariate x (CUPED), with "has any" flags — the per-customer values
  of the attribution rule in ``selectors``; only customers with such an event have a row;
- ``ab_test_arm_sums``: per variant and event type, the sufficient statistics over those customers
  (Σ flags, Σy, Σy², Σx, Σx², Σxy and the "both" count), plus the variant's assigned users.

A customer's contribution to the sums is a function of their outcome row, so each change is applied as
(contribution after) − (contribution before). Ingestion calls ``count_new_events`` once per batch, before
its insert and inside its transaction; assignment calls ``customers_assigned``. Both lock what they
change (the assignment rows, the sums rows), skip events whose id is already stored (a re-sent event
changes nothing), and roll back with the batch. ``rebuild`` recomputes a test from the raw events
(test start, test end when events after the end were counted, ``manage.py rebuild_abtest_rollups``, the
data migration, and the tests' reference). A test without sums rows (created by bulk loaders that bypass
the services) is analysed from the raw events, as before.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet

from abtests.models import ABTest, ABTestArmSums, ABTestAssignment, ABTestCustomerOutcome, bump_data_version
from campaigns.ingest.event_table import known_event_ids
from campaigns.models import Event
from marketing_ai import db

PRE_PERIOD_DAYS = 28  # CUPED's covariate window before the test's start (selectors.PRE_PERIOD_DAYS)
FAR_FUTURE = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
SUM_FIELDS = ("customers", "y", "y_sq", "x_customers", "x", "x_sq", "xy_customers", "xy")
EVENT_ID_LOCKS = 0x4D414931  # the namespace of the event-id locks ("MAI1"; db.lock_keys_for_transaction)
USERS = ""  # the event_type of the sums row that holds a variant's users


def tracked_types() -> list[str]:
    """The event types the metrics read (conversion first)."""
    from abtests.metrics import METRICS

    return list(dict.fromkeys([Event.Type.CONVERSION, *(m.event_type for m in METRICS.values())]))


def kept_test_ids() -> QuerySet[ABTestArmSums, Any]:
    """A subquery of the tests whose rollup is kept."""
    return ABTestArmSums.objects.filter(event_type=USERS).values("test_id")


def is_kept(test: ABTest) -> bool:
    return ABTestArmSums.objects.filter(test=test, event_type=USERS).exists()


def _contribution(y_any: bool, y: float, x_any: bool, x: float) -> tuple:
    return (int(y_any), y, y * y, int(x_any), x, x * x, int(x_any and y_any), x * y)


def _kind(*, occurred_at, assigned_at, started_at, ended_at) -> str | None:
    """'y' if the event counts in the test, 'x' if in the pre-period, else None (the attribution rule)."""
    if occurred_at > (ended_at or FAR_FUTURE):
        return None
    if occurred_at >= assigned_at:
        return "y"
    if started_at is not None and started_at - dt.timedelta(days=PRE_PERIOD_DAYS) <= occurred_at < started_at:
        return "x"
    return None


class _Changes:
    """Outcome rows to write and the sums deltas they imply, collected for one write."""

    def __init__(self, test_ids: Iterable[int], customer_ids: Iterable[int], types: Sequence[str]):
        self.rows = {
            (o.test_id, o.customer_id, o.event_type): o
            for o in ABTestCustomerOutcome.objects.filter(test_id__in=set(test_ids), customer_id__in=set(customer_ids),
                                                          event_type__in=types)
        }
        self.before = {key: _contribution(o.y_any, o.y, o.x_any, o.x) for key, o in self.rows.items()}
        self.users: dict[tuple[int, int], int] = defaultdict(int)  # (test, variant) -> users added
        # Every sums row a counted event touched, changed or not (a second conversion of a converted
        # customer leaves the sums alone but moves the results over time): its version is bumped.
        self.touched: set[tuple[int, int, str]] = set()

    def add(self, *, test_id: int, customer_id: int, variant_id: int, event_type: str, kind: str, amount: float):
        key = (test_id, customer_id, event_type)
        self.touched.add((test_id, variant_id, event_type))
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = ABTestCustomerOutcome(test_id=test_id, customer_id=customer_id,
                                                         variant_id=variant_id, event_type=event_type)
        if kind == "y":
            row.y_any, row.y = True, row.y + amount
        else:
            row.x_any, row.x = True, row.x + amount

    def save(self) -> None:
        deltas: dict[tuple[int, int, str], list[float]] = {}
        new: list[ABTestCustomerOutcome] = []
        changed: list[ABTestCustomerOutcome] = []
        for key, row in self.rows.items():
            after = _contribution(row.y_any, row.y, row.x_any, row.x)
            before = self.before.get(key)
            if before == after:
                continue
            (changed if before is not None else new).append(row)
            delta = deltas.setdefault((row.test_id, row.variant_id, row.event_type), [0.0] * len(SUM_FIELDS))
            for i, (a, b) in enumerate(zip(after, before or (0,) * len(SUM_FIELDS), strict=True)):
                delta[i] += a - b
        ABTestCustomerOutcome.objects.bulk_create(new, batch_size=1000)
        ABTestCustomerOutcome.objects.bulk_update(changed, ["y_any", "y", "x_any", "x"], batch_size=1000)
        # Sums rows in key order, so concurrent writers lock them in the same order. Each write bumps the
        # row's version in the same UPDATE: the cached A/B answers (abtests/answers.py) change at once.
        for key in sorted(self.touched | set(deltas)):
            test_id, variant_id, event_type = key
            delta = deltas.get(key) or [0.0] * len(SUM_FIELDS)
            ABTestArmSums.objects.filter(test_id=test_id, variant_id=variant_id, event_type=event_type).update(
                version=F("version") + 1, **{name: F(name) + d for name, d in zip(SUM_FIELDS, delta, strict=True) if d})
        for (test_id, variant_id), n in sorted(self.users.items()):
            ABTestArmSums.objects.filter(test_id=test_id, variant_id=variant_id, event_type=USERS).update(
                users=F("users") + n, version=F("version") + 1)


def count_new_events(records: Sequence[tuple], *, columns: Sequence[str]) -> None:
    """Ingestion's hook: fold a batch of event records (tuples in ``columns`` order, pks for the foreign
    keys) into the outcomes and sums of the kept tests they count for. Call it inside the batch's
    transaction, before the insert: events whose id is already stored are skipped, so a re-sent event
    changes nothing, and a batch that rolls back takes its changes with it."""
    at = {name: columns.index(name) for name in ("event_id", "type", "occurred_at", "customer_id", "campaign_id", "amount")}
    types = tracked_types()
    relevant = [r for r in records if r[at["type"]] in types and r[at["customer_id"]] is not None]
    if not relevant:
        return
    tests = {
        pk: (started, ended)
        for pk, started, ended in ABTest.objects.filter(
            campaign_id__in={r[at["campaign_id"]] for r in relevant}, pk__in=kept_test_ids(),
        ).exclude(status=ABTest.Status.DRAFT).values_list("pk", "started_at", "ended_at")
    }
    if not tests:
        return
    assigned = list(
        ABTestAssignment.objects.filter(test_id__in=list(tests), customer_id__in={r[at["customer_id"]] for r in relevant})
        .order_by("pk").values_list("pk", "test_id", "test__campaign_id", "customer_id", "variant_id", "assigned_at")
    )
    if not assigned:
        return
    # Writers of the same customers take turns: a concurrent batch with the same new event waits here,
    # then finds its id stored and skips it.
    list(ABTestAssignment.objects.select_for_update().filter(pk__in=[a[0] for a in assigned]).order_by("pk")
         .values_list("pk"))
    by_customer: dict[tuple[int, int], list[tuple]] = defaultdict(list)
    for _, test_id, campaign_id, customer_id, variant_id, assigned_at in assigned:
        by_customer[(campaign_id, customer_id)].append((test_id, variant_id, assigned_at))
    counted = [r for r in relevant if (r[at["campaign_id"]], r[at["customer_id"]]) in by_customer]
    # Writers of the same new event id take turns too: two batches carrying one id for two different
    # customers lock different assignments above, so without this both would find the id unstored and
    # both count it, while only one insert keeps it. Waiting here, the second finds it stored.
    db.lock_keys_for_transaction(EVENT_ID_LOCKS, [r[at["event_id"]] for r in counted])
    # Stored ids as ingestion sees them: on PostgreSQL the key table, which keeps the ids of events in
    # dropped months too (campaigns.partitions), so a re-sent old event changes nothing here either.
    stored = known_event_ids([r[at["event_id"]] for r in counted])
    changes = _Changes((a[1] for a in assigned), (a[3] for a in assigned), types)
    for r in counted:
        if r[at["event_id"]] in stored:
            continue
        for test_id, variant_id, assigned_at in by_customer[(r[at["campaign_id"]], r[at["customer_id"]])]:
            started, ended = tests[test_id]
            kind = _kind(occurred_at=r[at["occurred_at"]], assigned_at=assigned_at, started_at=started, ended_at=ended)
            if kind is not None:
                changes.add(test_id=test_id, customer_id=r[at["customer_id"]], variant_id=variant_id,
                            event_type=r[at["type"]], kind=kind, amount=float(r[at["amount"]] or 0))
    changes.save()


def customers_assigned(*, test: ABTest, assignments: Sequence[ABTestAssignment]) -> None:
    """Assignment's hook: the new assignments (stored by this transaction) add their users and, from the
    events already stored, their pre-period covariate and any in-test events."""
    if not assignments or not is_kept(test):
        return
    types = tracked_types()
    changes = _Changes((), (), ())
    for a in assignments:
        changes.users[(test.pk, a.variant_id)] += 1
    by_customer = {a.customer_id: a for a in assignments}
    window = Q(occurred_at__gte=min(a.assigned_at for a in assignments))
    if test.started_at is not None:
        window |= Q(occurred_at__gte=test.started_at - dt.timedelta(days=PRE_PERIOD_DAYS), occurred_at__lt=test.started_at)
    events = Event.objects.filter(window, campaign_id=test.campaign_id, customer_id__in=list(by_customer),
                                  type__in=types).values_list("customer_id", "type", "occurred_at", "amount")
    for customer_id, event_type, occurred_at, amount in events:
        a = by_customer[customer_id]
        kind = _kind(occurred_at=occurred_at, assigned_at=a.assigned_at, started_at=test.started_at,
                     ended_at=test.ended_at)
        if kind is not None:
            changes.add(test_id=test.pk, customer_id=customer_id, variant_id=a.variant_id, event_type=event_type,
                        kind=kind, amount=float(amount or 0))
    changes.save()


def abtest_ended(*, test: ABTest) -> None:
    """Events after the end stop counting: rebuild a kept test if any of its campaign's tracked events
    lies after ``ended_at`` (rare: only clock skew or future-dated events)."""
    if is_kept(test) and Event.objects.filter(campaign_id=test.campaign_id, type__in=tracked_types(),
                                              occurred_at__gt=test.ended_at).exists():
        rebuild(test=test)


_OUTCOMES_SQL = """
INSERT INTO {outcomes} (test_id, customer_id, variant_id, event_type, y_any, y, x_any, x)
SELECT a.test_id, a.customer_id, a.variant_id, %s,
       MAX(CASE WHEN e.occurred_at >= a.assigned_at THEN 1 ELSE 0 END) = 1,
       SUM(CASE WHEN e.occurred_at >= a.assigned_at THEN COALESCE(e.amount, 0) ELSE 0 END),
       MAX(CASE WHEN e.occurred_at >= %s AND e.occurred_at < %s AND e.occurred_at < a.assigned_at THEN 1 ELSE 0 END) = 1,
       SUM(CASE WHEN e.occurred_at >= %s AND e.occurred_at < %s AND e.occurred_at < a.assigned_at
                THEN COALESCE(e.amount, 0) ELSE 0 END)
FROM {events} e
JOIN {assignments} a ON a.test_id = %s AND a.customer_id = e.customer_id
WHERE e.campaign_id = %s AND e.type = %s AND e.occurred_at <= %s
GROUP BY a.test_id, a.customer_id, a.variant_id
HAVING MAX(CASE WHEN e.occurred_at >= a.assigned_at
                  OR (e.occurred_at >= %s AND e.occurred_at < %s) THEN 1 ELSE 0 END) = 1
"""

_SUMS_SQL = """
SELECT variant_id, event_type,
       SUM(CASE WHEN y_any THEN 1 ELSE 0 END), SUM(y), SUM(y * y),
       SUM(CASE WHEN x_any THEN 1 ELSE 0 END), SUM(x), SUM(x * x),
       SUM(CASE WHEN x_any AND y_any THEN 1 ELSE 0 END), SUM(x * y)
FROM {outcomes} WHERE test_id = %s
GROUP BY variant_id, event_type
"""


def rebuild(*, test: ABTest) -> None:
    """Recompute a test's outcomes and sums from the raw events and assignments (set-based SQL, the same
    on PostgreSQL and SQLite); from then on the test's rollup is kept."""
    with transaction.atomic():
        # The sums rows are recreated (their versions restart at 0): the test's own version moves instead,
        # in the same transaction, so no reader sees the new version with the old sums.
        bump_data_version([test.pk])
        rebuild_rows(test_pk=test.pk, campaign_pk=test.campaign_id, started_at=test.started_at,
                     ended_at=test.ended_at, variant_pks=[v.pk for v in test.variants.all()],
                     sums_model=ABTestArmSums, outcome_model=ABTestCustomerOutcome,
                     assignment_model=ABTestAssignment)


def rebuild_rows(*, test_pk: int, campaign_pk: int, started_at, ended_at, variant_pks: Sequence[int], sums_model,
                 outcome_model, assignment_model) -> None:
    """``rebuild`` on plain values and the given model classes (the data migration passes its historical ones)."""
    adapt = connection.ops.adapt_datetimefield_value
    ended = adapt(ended_at or FAR_FUTURE)
    if started_at is not None:
        window = [adapt(started_at - dt.timedelta(days=PRE_PERIOD_DAYS)), adapt(started_at)]
    else:
        window = [ended, ended]  # not started: an empty pre-period
    tables = {"outcomes": outcome_model._meta.db_table, "events": Event._meta.db_table,
              "assignments": assignment_model._meta.db_table}
    with transaction.atomic():
        sums_model.objects.filter(test_id=test_pk).delete()
        outcome_model.objects.filter(test_id=test_pk).delete()
        with connection.cursor() as cur:
            for event_type in tracked_types():
                cur.execute(_OUTCOMES_SQL.format(**tables),
                            [event_type, *window, *window, test_pk, campaign_pk, event_type, ended, *window])
            cur.execute(_SUMS_SQL.format(**tables), [test_pk])
            sums = {(v, t): vals for v, t, *vals in cur.fetchall()}
        users = dict(assignment_model.objects.filter(test_id=test_pk).values("variant_id").annotate(n=Count("id"))
                     .order_by().values_list("variant_id", "n"))
        rows = []
        for variant_pk in variant_pks:
            rows.append(sums_model(test_id=test_pk, variant_id=variant_pk, event_type=USERS, users=users.get(variant_pk, 0)))
            for event_type in tracked_types():
                vals = sums.get((variant_pk, event_type)) or (0,) * len(SUM_FIELDS)
                rows.append(sums_model(test_id=test_pk, variant_id=variant_pk, event_type=event_type,
                                       **{name: v or 0 for name, v in zip(SUM_FIELDS, vals, strict=True)}))
        sums_model.objects.bulk_create(rows)
