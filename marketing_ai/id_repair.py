"""Replace external ids stored before the id alphabet existed (``manage.py fix_external_ids``).

Every model with an external id is scanned for values outside ``validation.EXTERNAL_ID_RE`` (one
regex scan per table in the database, each hit checked again in Python). Each such id gets a
deterministic valid replacement: its characters outside the alphabet become ``_``, leading
punctuation is dropped, and ``-`` plus the first hex digits of the SHA-256 of the old id is appended
(so two old ids never meet, and a second run on another copy of the data picks the same new id).
Foreign keys point at primary keys, so rows that reference the object by key need nothing; the
places that hold an id as *text* are rewritten in the same transaction:

- an offer id: the change log's offer values (``undo`` looks the offer up by them), the proposals'
  live offer values, a completed A/B test's ``applied`` record;
- a merchant id: the change log's promoted-merchant lists, the merchant proposals' values;
- a campaign or A/B test id: the alert log's keys (``conversions:<id>:...``, ``abtest:<id>:...``), so
  an alert already sent is not sent again; a test keeps its hashing seed (the old id when it had
  none stored), so every customer keeps their variant.

All of it is one transaction: either every replacement is written or none is.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.db import models, transaction

from marketing_ai.validation import EXTERNAL_ID_MAX_LENGTH, EXTERNAL_ID_RE

# The alphabet as a database regex (PostgreSQL's and, through Django's REGEXP function, SQLite's):
# \A and \Z anchor at the very ends in both (a "$" would let a trailing newline through in Python).
DB_PATTERN = rf"\A{EXTERNAL_ID_RE.pattern}\Z"
_OUTSIDE = re.compile(r"[^A-Za-z0-9_.:@+-]")


def targets() -> list[tuple[type[models.Model], str]]:
    """Every (model, field) holding an external id."""
    from abtests.models import ABTest
    from campaigns.models import Campaign, Customer, Event, Merchant, Offer

    return [(Campaign, "campaign_id"), (Merchant, "merchant_id"), (Customer, "customer_id"), (Offer, "offer_id"),
            (ABTest, "test_id"), (Event, "event_id")]


def replacement_for(old: str, taken: Callable[[str], bool]) -> str:
    """A valid id for ``old``, deterministic, not ``taken``."""
    cleaned = _OUTSIDE.sub("_", old).lstrip("_.:@+-") or "id"
    digest = hashlib.sha256(old.encode("utf-8", "surrogatepass")).hexdigest()
    for length in (8, 16, 32):  # a longer digest only if the shorter one is taken
        candidate = f"{cleaned[:EXTERNAL_ID_MAX_LENGTH - length - 1]}-{digest[:length]}"
        if not taken(candidate):
            return candidate
    candidate = f"x{digest[:EXTERNAL_ID_MAX_LENGTH - 1]}"
    if taken(candidate):
        raise RuntimeError(f"no free replacement for {old!r}")
    return candidate


@dataclass
class Replacement:
    table: str
    pk: int
    field: str
    old: str
    new: str


@dataclass
class Report:
    replacements: list[Replacement] = field(default_factory=list)
    references: dict[str, int] = field(default_factory=dict)  # "table.column" -> rows rewritten
    applied: bool = False

    def count_reference(self, where: str, rows: int) -> None:
        if rows:
            self.references[where] = self.references.get(where, 0) + rows


def invalid_ids(model: type[models.Model], column: str) -> Iterator[tuple[int, str]]:
    """(pk, id) of the rows whose id is outside the alphabet."""
    rows = model._default_manager.exclude(**{f"{column}__regex": DB_PATTERN}).order_by("pk").values_list("pk", column)
    for pk, value in rows.iterator(chunk_size=2000):
        if not EXTERNAL_ID_RE.fullmatch(value or ""):
            yield pk, value or ""


def find(report: Report | None = None) -> Report:
    """What would change (nothing is written)."""
    report = report or Report()
    for model, column in targets():
        chosen: set[str] = set()

        def taken(candidate: str, model=model, column=column, chosen=chosen) -> bool:
            return candidate in chosen or model.objects.filter(**{column: candidate}).exists()

        for pk, old in invalid_ids(model, column):
            new = replacement_for(old, taken)
            chosen.add(new)
            report.replacements.append(Replacement(model._meta.db_table, pk, column, old, new))
    return report


def fix() -> Report:
    """Replace every invalid id and the text that references it, in one transaction."""
    with transaction.atomic():
        report = find()
        by_table: dict[str, list[Replacement]] = {}
        for r in report.replacements:
            by_table.setdefault(r.table, []).append(r)
        for model, column in targets():
            for r in by_table.get(model._meta.db_table, []):
                _rewrite_references(model, r, report)
                model._default_manager.filter(pk=r.pk).update(**{column: r.new})
        report.applied = True
    return report


def _replace_in_list(value: str | None, old: str, new: str) -> str | None:
    """``value`` with the element ``old`` of its comma-separated list (or the whole value) replaced."""
    if value is None or value == "":
        return value
    if value == old:
        return new
    parts = value.split(",")
    return ",".join(new if part == old else part for part in parts) if old in parts else value


def _rewrite_references(model: type[models.Model], r: Replacement, report: Report) -> None:
    from abtests.models import ABTest, bump_data_version
    from analytics.models import AlertSent
    from campaigns.models import Campaign, CampaignChange, Merchant, Offer
    from optimizer.models import CampaignOptimization

    if model is Offer:
        # The A/B answers show a variant's offer_id: their cached copies go stale (abtests/answers.py).
        bump_data_version(ABTest.objects.filter(variants__offer_id=r.pk).values_list("pk", flat=True).distinct())
        for column in ("old_value", "new_value"):
            rows = CampaignChange.objects.filter(field=CampaignChange.Field.OFFER, **{column: r.old}).update(**{column: r.new})
            report.count_reference(f"campaign_changes.{column}", rows)
        rows = CampaignOptimization.objects.filter(recommendation_type=CampaignOptimization.Type.OFFER,
                                                   live_value=r.old).update(live_value=r.new)
        report.count_reference(f"{CampaignOptimization._meta.db_table}.live_value", rows)
        for test in ABTest.objects.exclude(applied={}).only("pk", "applied"):
            applied = {k: (r.new if v == r.old and "offer" in k else v) for k, v in (test.applied or {}).items()}
            if applied != test.applied:
                ABTest.objects.filter(pk=test.pk).update(applied=applied, data_version=models.F("data_version") + 1)
                report.count_reference(f"{ABTest._meta.db_table}.applied", 1)
    elif model is Merchant:
        _rewrite_lists(CampaignChange.objects.filter(field=CampaignChange.Field.PROMOTED_MERCHANTS),
                       ("old_value", "new_value"), r, report)
        _rewrite_lists(CampaignOptimization.objects.filter(recommendation_type=CampaignOptimization.Type.MERCHANT),
                       ("current_value", "recommended_value", "live_value"), r, report)
    elif model is Campaign:
        bump_data_version(ABTest.objects.filter(campaign_id=r.pk).values_list("pk", flat=True))  # answers show campaign_id
        _rewrite_alert_keys(AlertSent, f"conversions:{r.old}:", f"conversions:{r.new}:", report)
    elif model is ABTest:
        ABTest.objects.filter(pk=r.pk, hashing_seed="").update(hashing_seed=r.old)  # every customer keeps their variant
        bump_data_version([r.pk])
        _rewrite_alert_keys(AlertSent, f"abtest:{r.old}:", f"abtest:{r.new}:", report)


def _rewrite_lists(queryset, columns: tuple[str, ...], r: Replacement, report: Report) -> None:
    for column in columns:
        for pk, value in queryset.filter(**{f"{column}__contains": r.old}).values_list("pk", column):
            replaced = _replace_in_list(value, r.old, r.new)
            if replaced != value:
                queryset.model.objects.filter(pk=pk).update(**{column: replaced})
                report.count_reference(f"{queryset.model._meta.db_table}.{column}", 1)


def _rewrite_alert_keys(model, old_prefix: str, new_prefix: str, report: Report) -> None:
    for pk, key in model.objects.filter(key__startswith=old_prefix).values_list("pk", "key"):
        model.objects.filter(pk=pk).update(key=new_prefix + key[len(old_prefix):])
        report.count_reference(f"{model._meta.db_table}.key", 1)
