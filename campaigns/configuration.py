"""Writes to a campaign's configuration, each one recorded in the change log (``CampaignChange``).

``change_settings`` is the one way a campaign's settings change: admin saves, API writes, applied
recommendations, A/B winners and undos all call it. It locks the campaign row, checks every new
value, writes it, and records who, when, from -> to and the source in the same transaction.
``undo_change`` reverts a change to the value before it (refused when the value changed since).

The settings and their canonical string values (what the log stores and what proposals record as the
live value they were computed against):

- ``offer`` with segment "": the campaign default (``current_offer``), an offer id or "";
- ``offer`` with a segment name: that segment's own offer (``CampaignSegmentOffer``), or "" when the
  segment follows the default;
- ``send_time``: ``HH:MM`` (UTC) or "";
- ``send_time_policy``: one of ``Campaign.SendTimePolicy`` ("fixed": everyone at ``send_time``;
  "personal": each customer at their own best local hour);
- ``target_segments``: segment names, sorted, comma-separated ("" = all segments);
- ``promoted_merchants``: merchant ids, sorted, comma-separated;
- ``status``: one of ``Campaign.Status``.

Why a plain table written here rather than django-pghistory or django-simple-history: pghistory
records through PostgreSQL triggers, and the demo and half of CI run on SQLite. simple-history works
on SQLite and can carry a change reason, but it stores a snapshot of the whole row per save, with
many-to-many fields in extra historical through tables; a setting here spans three tables (the
campaign row, the per-segment offers, the segment and merchant lists), so "who changed new_users'
offer from what to what" would mean diffing snapshots across them, and undo needs exactly that one
from -> to. Every settings write already goes through this service, so it writes one row per changed
setting, in the shape the page, the API and undo read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from campaigns import selectors
from campaigns.models import Campaign, CampaignChange, CampaignSegmentOffer, Merchant, Offer, Segment
from marketing_ai.errors import Conflict, InvalidInput, StaleValue

Field = CampaignChange.Field
Source = CampaignChange.Source


@dataclass(frozen=True)
class SettingChange:
    """Set ``field`` (for one ``segment`` where the field has segments) to a canonical ``value``."""

    field: str
    value: str
    segment: str = ""


def _user(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def _names(value: str) -> list[str]:
    return sorted({n.strip() for n in value.split(",") if n.strip()})


def canonical(field: str, value) -> str:
    """The canonical string of a typed value (an Offer, a time, segments, merchants, a status)."""
    if value is None:
        return ""
    if field == Field.OFFER:
        return value.offer_id if isinstance(value, Offer) else str(value)
    if field == Field.SEND_TIME:
        return value.strftime("%H:%M") if isinstance(value, dt.time) else str(value)
    if field == Field.TARGET_SEGMENTS:
        return ",".join(sorted(s.name if isinstance(s, Segment) else str(s) for s in value))
    if field == Field.PROMOTED_MERCHANTS:
        return ",".join(sorted(m.merchant_id if isinstance(m, Merchant) else str(m) for m in value))
    return str(value)


def _set_related(campaign: Campaign, related, model, key: str, keys: list[str], missing_text: str) -> str:
    """Replace a many-to-many setting (target segments, promoted merchants) by external keys; 400 naming
    the keys that match nothing. Returns the canonical value (the keys, comma-separated)."""
    rows = list(model.objects.filter(**{f"{key}__in": keys}))
    missing = sorted(set(keys) - {getattr(row, key) for row in rows})
    if missing:
        raise InvalidInput({related.prefetch_cache_name: [f"{missing_text} {', '.join(missing)}"]})
    related.set(rows)
    campaign.save(update_fields=["updated_at"])
    return ",".join(keys)


def _write(campaign: Campaign, change: SettingChange) -> str:
    """Write one canonical value; returns it normalised. Raises InvalidInput naming the field."""
    field, value, segment = change.field, (change.value or "").strip(), change.segment
    if field != Field.OFFER and segment:
        raise InvalidInput({field: [f"{field} is set for the whole campaign, not per segment ({segment!r})"]})
    if field == Field.OFFER:
        offer = None
        if value:
            offer = Offer.objects.filter(offer_id=value).first()
            if offer is None:
                raise InvalidInput({"offer_id": [f"no offer with offer_id {value!r}"]})
        if not segment:
            campaign.current_offer = offer
            campaign.save(update_fields=["current_offer", "updated_at"])
            return value
        seg = Segment.objects.filter(name=segment).first()
        if seg is None:
            raise InvalidInput({"segment": [f"no segment named {segment!r}"]})
        if offer is None:
            CampaignSegmentOffer.objects.filter(campaign=campaign, segment=seg).delete()
        else:
            CampaignSegmentOffer.objects.update_or_create(
                campaign=campaign, segment=seg, defaults={"offer": offer, "updated_at": timezone.now()}
            )
        campaign.save(update_fields=["updated_at"])
        return value
    if field == Field.SEND_TIME:
        try:
            campaign.send_time = dt.time.fromisoformat(value) if value else None
        except ValueError:
            raise InvalidInput({"send_time": [f"{value!r} is not a time; use HH:MM (UTC)"]}) from None
        campaign.save(update_fields=["send_time", "updated_at"])
        return canonical(field, campaign.send_time)
    if field == Field.TARGET_SEGMENTS:
        return _set_related(campaign, campaign.target_segments, Segment, "name", _names(value), "no segments named")
    if field == Field.PROMOTED_MERCHANTS:
        return _set_related(campaign, campaign.promoted_merchants, Merchant, "merchant_id", _names(value),
                            "no merchants with merchant_id")
    if field == Field.SEND_TIME_POLICY:
        if value not in Campaign.SendTimePolicy.values:
            raise InvalidInput({"send_time_policy": [f"one of {', '.join(Campaign.SendTimePolicy.values)}"]})
        campaign.send_time_policy = value
        campaign.save(update_fields=["send_time_policy", "updated_at"])
        return value
    if field == Field.STATUS:
        if value not in Campaign.Status.values:
            raise InvalidInput({"status": [f"one of {', '.join(Campaign.Status.values)}"]})
        campaign.status = value
        campaign.save(update_fields=["status", "updated_at"])
        return value
    raise InvalidInput({"field": [f"unknown setting {field!r}; one of {', '.join(Field.values)}"]})


def lock(campaign: Campaign) -> Campaign:
    """The campaign row, locked until the end of the transaction (settings writes are serialised)."""
    return Campaign.objects.select_for_update().get(pk=campaign.pk)


def change_settings(
    campaign: Campaign,
    changes: Sequence[SettingChange],
    *,
    user=None,
    source: str,
    note: str = "",
    reverts: CampaignChange | None = None,
) -> list[CampaignChange]:
    """Apply ``changes`` in order and log each one that changes something; all or nothing.

    Returns the log rows written (a change to the value already live writes nothing).
    """
    if source not in Source.values:
        raise ValueError(f"unknown change source {source!r}")
    written: list[CampaignChange] = []
    with transaction.atomic():
        locked = lock(campaign)
        for change in changes:
            before = selectors.setting_value(locked, change.field, change.segment)
            after = _write(locked, change)
            if after == before:
                continue
            written.append(
                CampaignChange.objects.create(
                    campaign=locked, changed_by=_user(user), field=change.field, segment=change.segment,
                    old_value=before, new_value=after, source=source, note=note[:200], reverts=reverts,
                )
            )
    _refresh(campaign, locked)
    return written


def _refresh(campaign: Campaign, locked: Campaign) -> None:
    """Bring the caller's instance up to date (it may be the serializer's or the admin's object)."""
    for name in ("current_offer_id", "send_time", "send_time_policy", "status", "updated_at"):
        setattr(campaign, name, getattr(locked, name))
    campaign._state.fields_cache.pop("current_offer", None)
    getattr(campaign, "_prefetched_objects_cache", {}).clear()


def describe(change: CampaignChange) -> str:
    """"an A/B winner applied at 2026-01-02 10:00 UTC by ana": who changed a value, for messages."""
    who = f" by {change.changed_by.get_username()}" if change.changed_by is not None else ""
    labels: dict[str, str] = {
        Source.RECOMMENDATION: "an applied recommendation",
        Source.AB_WINNER: "an A/B winner applied",
        Source.ADMIN: "an admin edit",
        Source.API: "an API write",
        Source.UNDO: "an undo",
    }
    what = labels.get(change.source, change.source)
    note = f" ({change.note})" if change.note else ""
    return f"{what}{note} at {change.changed_at:%Y-%m-%d %H:%M} UTC{who}"


def stale_message(campaign: Campaign, field: str, segment: str, *, expected: str, live: str, what: str) -> str:
    label = f"{field} for {segment}" if segment else field
    last = selectors.last_change(campaign, field, [segment, ""] if field == Field.OFFER and segment else [segment])
    cause = describe(last) if last is not None else "a change made outside the change log"
    return (
        f"{what} was computed against {label} = {expected or '(none)'}, but it is now {live or '(none)'}, "
        f"changed by {cause}. Regenerate the recommendations for this campaign to get a proposal for the live value."
    )


def undo_change(change: CampaignChange, *, user=None, note: str = "") -> CampaignChange:
    """Put the value back to what it was before ``change``; refused (409) if it changed since."""
    with transaction.atomic():
        campaign = lock(change.campaign)
        change = CampaignChange.objects.select_for_update().get(pk=change.pk)
        if change.reverted_by.exists():
            raise Conflict(f"change {change.pk} was already undone")
        live = selectors.setting_value(campaign, change.field, change.segment)
        if live != change.new_value:
            label = f"{change.field} for {change.segment}" if change.segment else change.field
            later = selectors.last_change(campaign, change.field, [change.segment])
            cause = describe(later) if later is not None and later.pk != change.pk else "a change outside the change log"
            raise StaleValue(
                f"cannot undo: {label} is now {live or '(none)'}, not {change.new_value or '(none)'}; "
                f"it was changed since by {cause}."
            )
        [undo] = change_settings(
            campaign, [SettingChange(change.field, change.old_value, change.segment)], user=user,
            source=Source.UNDO, note=note or f"undo of change {change.pk}", reverts=change,
        )
    return undo


def campaign_create(data: dict, *, user=None) -> Campaign:
    """A new campaign from validated API data; its first configuration is its starting state (not logged)."""
    segment_offers = data.pop("segment_offers", None) or []
    segments = data.pop("target_segments", None)
    merchants = data.pop("promoted_merchants", None)
    with transaction.atomic():
        campaign = Campaign.objects.create(**data)
        if segments:
            campaign.target_segments.set(segments)
        if merchants:
            campaign.promoted_merchants.set(merchants)
        for row in segment_offers:
            CampaignSegmentOffer.objects.create(campaign=campaign, segment=row["segment"], offer=row["offer"])
    return campaign


SETTING_FIELDS = (
    "current_offer", "send_time", "send_time_policy", "target_segments", "promoted_merchants", "status", "segment_offers",
)


def setting_changes_from(campaign: Campaign, data: dict) -> list[SettingChange]:
    """The settings part of validated API/admin data, as changes (typed values -> canonical strings)."""
    out: list[SettingChange] = []
    if "current_offer" in data:
        out.append(SettingChange(Field.OFFER, canonical(Field.OFFER, data["current_offer"])))
    if "send_time" in data:
        out.append(SettingChange(Field.SEND_TIME, canonical(Field.SEND_TIME, data["send_time"])))
    if "send_time_policy" in data:
        out.append(SettingChange(Field.SEND_TIME_POLICY, canonical(Field.SEND_TIME_POLICY, data["send_time_policy"])))
    if "target_segments" in data:
        out.append(SettingChange(Field.TARGET_SEGMENTS, canonical(Field.TARGET_SEGMENTS, data["target_segments"])))
    if "promoted_merchants" in data:
        out.append(SettingChange(Field.PROMOTED_MERCHANTS, canonical(Field.PROMOTED_MERCHANTS, data["promoted_merchants"])))
    if "status" in data:
        out.append(SettingChange(Field.STATUS, canonical(Field.STATUS, data["status"])))
    if "segment_offers" in data:
        # The list replaces the per-segment offers: segments left out follow the default again.
        wanted = {row["segment"].name: row["offer"].offer_id for row in data["segment_offers"]}
        current = selectors.segment_offer_overrides(campaign)
        for name in sorted(set(current) | set(wanted)):
            out.append(SettingChange(Field.OFFER, wanted.get(name, ""), segment=name))
    return out


def campaign_update(campaign: Campaign, data: dict, *, user=None, source: str = Source.API) -> Campaign:
    """Update from validated data: plain fields are saved, settings go through ``change_settings`` (logged)."""
    settings_part = {k: data.pop(k) for k in SETTING_FIELDS if k in data}
    with transaction.atomic():
        if data:
            locked = lock(campaign)
            for name, value in data.items():
                setattr(locked, name, value)
                setattr(campaign, name, value)
            locked.save(update_fields=[*data, "updated_at"])
        change_settings(campaign, setting_changes_from(campaign, settings_part), user=user, source=source)
    return campaign

