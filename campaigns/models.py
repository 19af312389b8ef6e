"""The shared domain: merchants, customers, segments, offers, campaigns and the event stream.

Other services own the source of truth and send their ids as strings (``camp_12345``,
``user_42``, ``m_7``); we keep those as ``*_id`` external keys beside our integer primary keys.
Money is Decimal, never float. Times are UTC; a customer carries an IANA time zone.
"""

from __future__ import annotations

import re
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.timezone import now

from marketing_ai.validation import EXTERNAL_ID_RULE, validate_external_id

MONEY = {"max_digits": 14, "decimal_places": 2}


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. 'Europe/Paris').") from None


# An event's channel: the short name of the way it reached or came from the customer (``email``, ``push``,
# ``sms``, ``in_app``, ...). Lower-case so that breakdowns do not split "Email" from "email".
EVENT_CHANNEL_MAX_LENGTH = 32
EVENT_CHANNEL_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
EVENT_CHANNEL_RULE = (f"1-{EVENT_CHANNEL_MAX_LENGTH} characters of a-z 0-9 _, starting with a letter "
                      "(e.g. email, push, sms, in_app)")


def event_channel_problem(value: str) -> str | None:
    """Why ``value`` is not an event channel (``None`` when it is one)."""
    if EVENT_CHANNEL_RE.fullmatch(value):
        return None
    if len(value) > EVENT_CHANNEL_MAX_LENGTH:
        return f"is longer than {EVENT_CHANNEL_MAX_LENGTH} characters"
    return f"{value[:80]!r} is not a channel: {EVENT_CHANNEL_RULE}"


def validate_event_channel(value: str) -> None:
    problem = event_channel_problem(value)
    if problem:
        raise ValidationError(f"The channel {problem}.", code="invalid_channel")


class Segment(models.Model):
    """A customer segment. The rules that assign customers are in ``campaigns.segments``."""

    NEW_USERS = "new_users"
    RETURNING_USERS = "returning_users"
    HIGH_VALUE_USERS = "high_value_users"

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Merchant(models.Model):
    merchant_id = models.CharField(
        max_length=64, unique=True, validators=[validate_external_id], help_text=f"External id, e.g. m_7 ({EXTERNAL_ID_RULE})"
    )
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.merchant_id})"


class Customer(models.Model):
    customer_id = models.CharField(
        max_length=64, unique=True, validators=[validate_external_id], help_text=f"External id, e.g. user_42 ({EXTERNAL_ID_RULE})"
    )
    signup_date = models.DateField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="customers")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["customer_id"]

    def __str__(self) -> str:
        return self.customer_id


class Offer(models.Model):
    class Kind(models.TextChoices):
        PERCENT = "percent", "percent off"
        AMOUNT = "amount", "amount off"

    offer_id = models.CharField(
        max_length=64, unique=True, validators=[validate_external_id], help_text=f"External id, e.g. off_25pct ({EXTERNAL_ID_RULE})"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PERCENT)
    value = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(0)])
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["kind", "value"]

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.kind == self.Kind.PERCENT else f"{self.value} off"


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        COMPLETED = "completed"

    class SendTimePolicy(models.TextChoices):
        FIXED = "fixed"
        PERSONAL = "personal"

    class Channel(models.TextChoices):
        PUSH = "push"
        EMAIL = "email"
        SMS = "sms"
        IN_APP = "in_app"

    campaign_id = models.CharField(
        max_length=64, unique=True, validators=[validate_external_id], help_text=f"External id, e.g. camp_12345 ({EXTERNAL_ID_RULE})"
    )
    name = models.CharField(max_length=200)
    merchant = models.ForeignKey(Merchant, null=True, blank=True, on_delete=models.SET_NULL, related_name="campaigns")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.PUSH)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    budget = models.DecimalField(**MONEY, default=0, validators=[MinValueValidator(0)])
    current_offer = models.ForeignKey(Offer, null=True, blank=True, on_delete=models.SET_NULL, related_name="campaigns")
    send_time = models.TimeField(null=True, blank=True, help_text="Current send time (UTC)")
    send_time_policy = models.CharField(
        max_length=16, choices=SendTimePolicy.choices, default=SendTimePolicy.FIXED,
        help_text="fixed: everyone at send_time (UTC); personal: each customer at their own best local hour "
                  "(user_send_times; the population hour for customers with too few opens)",
    )
    target_segments = models.ManyToManyField(Segment, blank=True, related_name="campaigns")
    # Partners this campaign cross-promotes (what applying a merchant recommendation adds to).
    promoted_merchants = models.ManyToManyField(Merchant, blank=True, related_name="promoted_by_campaigns")
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "campaign_id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.campaign_id})"

    def clean(self) -> None:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": "end_date is before start_date."})


class CampaignSegmentOffer(models.Model):
    """The offer one segment gets in one campaign, overriding the campaign default (``current_offer``).

    A segment without a row here gets the default. ``campaigns.selectors.segment_offers`` resolves both.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="segment_offers")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="campaign_offers")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="campaign_segments")
    updated_at = models.DateTimeField(default=now)

    class Meta:
        db_table = "campaign_segment_offers"
        ordering = ["campaign_id", "segment__name"]
        constraints = [models.UniqueConstraint(fields=["campaign", "segment"], name="campaign_segment_offer_unique")]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.segment_id}: {self.offer}"


class CampaignChange(models.Model):
    """One change of one campaign setting: who, when, from -> to, and where it came from.

    Written only by ``campaigns.configuration.change_settings`` (admin saves, API writes, applied
    recommendations, A/B winners and undos all go through it). Values are the canonical strings of
    ``campaigns.configuration`` (an offer id, ``HH:MM``, sorted comma-separated names or ids).
    """

    class Field(models.TextChoices):
        OFFER = "offer", "offer"  # segment "" = the campaign default, else that segment's own offer
        SEND_TIME = "send_time", "send time"
        SEND_TIME_POLICY = "send_time_policy", "send-time policy"
        TARGET_SEGMENTS = "target_segments", "target segments"
        PROMOTED_MERCHANTS = "promoted_merchants", "promoted merchants"
        STATUS = "status", "status"

    class Source(models.TextChoices):
        RECOMMENDATION = "recommendation", "recommendation"
        AB_WINNER = "ab_winner", "A/B winner"
        ADMIN = "admin", "admin"
        API = "api", "API"
        UNDO = "undo", "undo"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="changes")
    changed_at = models.DateTimeField(default=now)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    field = models.CharField(max_length=32, choices=Field.choices)
    segment = models.CharField(max_length=64, blank=True, default="")
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    note = models.CharField(max_length=200, blank=True, help_text="e.g. the recommendation or A/B test behind it")
    reverts = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reverted_by",
        help_text="The change this one undid",
    )

    class Meta:
        db_table = "campaign_changes"
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["campaign", "field", "segment", "changed_at"], name="campchange_campaign_field")]

    def __str__(self) -> str:
        where = f"[{self.segment}]" if self.segment else ""
        return f"{self.campaign_id} {self.field}{where}: {self.old_value or '-'} -> {self.new_value or '-'} ({self.source})"


class Event(models.Model):
    """One thing that happened. ``event_id`` is the client's idempotency key.

    Built for a fast write path (docs/ingestion.md, "Throughput"): the references to campaign, customer,
    merchant and offer are checked by ``campaigns.services.ingest_events`` once per batch, not by
    per-row database foreign-key triggers (``db_constraint=False``: those triggers cost PostgreSQL more than
    all the indexes together). Deleting a referenced row is still refused: ``on_delete=PROTECT`` in Django,
    and on PostgreSQL a statement trigger on each referenced table (migration 0004).
    """

    class Type(models.TextChoices):
        NOTIFICATION_SENT = "notification_sent"
        NOTIFICATION_OPENED = "notification_opened"
        VIEW = "view"
        CLICK = "click"
        CONVERSION = "conversion"  # amount = revenue
        SPEND = "spend"  # amount = campaign cost

    # Unique through the constraint below (one index that serves both = and prefix LIKE).
    event_id = models.CharField(max_length=64, validators=[validate_external_id])
    type = models.CharField(max_length=24, choices=Type.choices)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=now)
    # Indexes: only what the reads use (see Meta). No single-column customer/campaign indexes: the
    # campaign one is covered by (campaign, occurred_at); no reader looks events up by customer.
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="events",
        db_index=False, db_constraint=False,
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="events", db_index=False, db_constraint=False
    )
    merchant = models.ForeignKey(
        Merchant, null=True, blank=True, on_delete=models.PROTECT, related_name="events",
        db_index=False, db_constraint=False,
    )
    offer = models.ForeignKey(
        Offer, null=True, blank=True, on_delete=models.PROTECT, related_name="events",
        db_index=False, db_constraint=False,
    )
    variant = models.CharField(max_length=64, blank=True, default="")
    amount = models.DecimalField(**MONEY, null=True, blank=True)
    # Optional (added after the first senders): "" when the sender gave none. A database default too, so
    # a writer that names its columns (a COPY from before the column existed) still stores "".
    channel = models.CharField(max_length=EVENT_CHANNEL_MAX_LENGTH, blank=True, default="", db_default="",
                               validators=[validate_event_channel])

    class Meta:
        constraints = [
            # varchar_pattern_ops: the same index answers event_id = ... (idempotency, ON CONFLICT) and
            # event_id LIKE 'prefix%' (demo clean-up), so PostgreSQL keeps one index on event_id, not two.
            models.UniqueConstraint(fields=["event_id"], name="event_event_id_unique", opclasses=["varchar_pattern_ops"]),
        ]
        indexes = [
            # The aggregation jobs read a time window, whole or per campaign.
            models.Index(fields=["occurred_at"], name="event_occurred"),
            models.Index(fields=["campaign", "occurred_at"], name="event_campaign_occurred"),
            # Only ~1 event in 10 has a merchant or offer: partial indexes, for the PROTECT check on delete.
            models.Index(fields=["merchant"], name="event_merchant", condition=models.Q(merchant__isnull=False)),
            models.Index(fields=["offer"], name="event_offer", condition=models.Q(offer__isnull=False)),
            # A/B attribution joins a campaign's conversions to its assignments by customer. Conversions are
            # a small share of events, so this partial index costs ingestion little.
            models.Index(
                fields=["campaign", "customer", "occurred_at"],
                name="event_conversion_attribution",
                condition=models.Q(type="conversion"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
