"""Optimisation tables: the model registry, recommendations, affinities and send times."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.timezone import now

from campaigns.models import Campaign, CampaignChange, Customer, Merchant

UNIT = [MinValueValidator(0.0), MaxValueValidator(1.0)]


class ModelType(models.TextChoices):
    CONVERSION = "conversion", "conversion propensity"
    ENGAGEMENT = "engagement", "engagement (open) propensity"
    SEND_TIME = "send_time", "send time"
    AFFINITY = "affinity", "merchant affinity"
    OFFER_RESPONSE = "offer_response", "offer response"


class MLModel(models.Model):
    """One trained version of one model type. At most one version per type is active (the champion)."""

    model_type = models.CharField(max_length=32, choices=ModelType.choices)
    version = models.PositiveIntegerField()
    algorithm = models.CharField(max_length=120, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="Holdout metrics (time-based split)")
    primary_metric = models.CharField(max_length=40, blank=True)
    accuracy = models.FloatField(null=True, blank=True, help_text="Value of the primary holdout metric")
    train_start = models.DateTimeField(null=True, blank=True)
    train_end = models.DateTimeField(null=True, blank=True)
    train_rows = models.BigIntegerField(default=0)
    holdout_rows = models.BigIntegerField(default=0)
    features = models.JSONField(default=list, blank=True)
    params = models.JSONField(default=dict, blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    is_active = models.BooleanField(default=False)
    promotion_note = models.TextField(blank=True, help_text="Why this version was or was not promoted")
    last_trained = models.DateTimeField(default=now)
    created_at = models.DateTimeField(default=now)

    class Meta:
        verbose_name = "ML model"
        db_table = "ml_models"
        ordering = ["model_type", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model_type", "version"], name="ml_models_type_version"),
            models.UniqueConstraint(
                fields=["model_type"], condition=models.Q(is_active=True), name="ml_models_one_active_per_type"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_type} v{self.version}{' (active)' if self.is_active else ''}"


class CampaignOptimization(models.Model):
    class Type(models.TextChoices):
        OFFER = "offer"
        TIMING = "timing"
        SEGMENT = "segment"
        MERCHANT = "merchant"

    class Status(models.TextChoices):
        PROPOSED = "proposed"
        APPLIED = "applied"
        DISMISSED = "dismissed"
        SUPERSEDED = "superseded"
        UNDONE = "undone"  # applied, then reverted (the change log holds both changes)

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="optimizations")
    recommendation_type = models.CharField(max_length=16, choices=Type.choices)
    # What the recommendation is about within the campaign, e.g. the segment name for an offer.
    target = models.CharField(max_length=100, blank=True, default="")
    current_value = models.CharField(max_length=200, blank=True)
    recommended_value = models.CharField(max_length=200)
    expected_impact = models.FloatField(help_text="Expected relative lift, in percent")
    confidence = models.FloatField(validators=UNIT)
    affected_users = models.PositiveIntegerField(default=0)
    priority = models.PositiveSmallIntegerField(default=3, help_text="1 = highest")
    rationale = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROPOSED, db_index=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    applied_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    # The campaign's live value this proposal was computed against, canonical (campaigns.configuration):
    # apply is refused when the live value differs now. Null on rows written before it was recorded.
    live_value = models.TextField(null=True, blank=True)
    applied_change = models.ForeignKey(
        CampaignChange, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The change-log row applying this proposal wrote (what undo reverts)",
    )

    class Meta:
        db_table = "campaign_optimizations"
        ordering = ["priority", "-expected_impact"]
        indexes = [models.Index(fields=["campaign", "recommendation_type", "status"], name="campopt_campaign_type")]

    def __str__(self) -> str:
        return f"{self.campaign.campaign_id} {self.recommendation_type}: {self.recommended_value} ({self.status})"


class UserMerchantAffinity(models.Model):
    class Engagement(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merchant_affinities")
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="customer_affinities")
    rank = models.PositiveSmallIntegerField(default=1)
    affinity_score = models.FloatField(validators=UNIT)
    engagement_level = models.CharField(max_length=8, choices=Engagement.choices, default=Engagement.LOW)
    avg_purchase_value = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    confidence = models.FloatField(validators=UNIT, default=0.0)
    last_updated = models.DateTimeField(default=now)

    class Meta:
        verbose_name_plural = "user merchant affinities"
        db_table = "user_merchant_affinity"
        ordering = ["customer_id", "rank"]
        constraints = [models.UniqueConstraint(fields=["customer", "merchant"], name="affinity_customer_merchant")]
        indexes = [models.Index(fields=["customer", "rank"], name="affinity_customer_rank")]

    def __str__(self) -> str:
        return f"{self.customer_id}->{self.merchant_id}: {self.affinity_score:.2f}"


class UserSendTime(models.Model):
    class Method(models.TextChoices):
        PERSONAL = "personal"
        FALLBACK = "fallback"

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="send_time")
    local_send_time = models.TimeField(help_text="In the customer's own time zone")
    utc_send_time = models.TimeField()
    expected_improvement = models.FloatField(help_text="Expected relative open-rate improvement, in percent")
    confidence = models.FloatField(validators=UNIT, default=0.0)
    events_used = models.PositiveIntegerField(default=0)
    method = models.CharField(max_length=16, choices=Method.choices)
    last_updated = models.DateTimeField(default=now)

    class Meta:
        db_table = "user_send_times"

    def __str__(self) -> str:
        return f"{self.customer_id} {self.local_send_time:%H:%M} ({self.method})"


class StagedRow(models.Model):
    """A row a fan-out part of a per-customer job computed, waiting for the run's swap (optimizer.services.staging).

    ``run`` names the job run, ``part`` its part, ``attempt`` one execution of that part: a part done twice
    (its helper died after writing) leaves two attempts, and the swap takes one of them. Plain integer
    columns, no foreign keys: the swap into the real table checks those. UNLOGGED on PostgreSQL (migration
    0005, ``marketing_ai.db.make_unlogged``).
    """

    run = models.CharField(max_length=32)
    part = models.PositiveIntegerField()
    attempt = models.CharField(max_length=32)
    customer_id = models.BigIntegerField()
    last_updated = models.DateTimeField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"run {self.run} part {self.part}: customer {self.customer_id}"


class SendTimeStage(StagedRow):
    """``user_send_times`` rows of a fan-out run's parts, before the swap."""

    local_send_time = models.TimeField()
    utc_send_time = models.TimeField()
    expected_improvement = models.FloatField()
    confidence = models.FloatField()
    events_used = models.PositiveIntegerField()
    method = models.CharField(max_length=16)

    class Meta:
        db_table = "user_send_times_stage"


class AffinityStage(StagedRow):
    """``user_merchant_affinity`` rows of a fan-out run's parts, before the swap."""

    merchant_id = models.BigIntegerField()
    rank = models.PositiveSmallIntegerField()
    affinity_score = models.FloatField()
    engagement_level = models.CharField(max_length=8)
    avg_purchase_value = models.DecimalField(max_digits=14, decimal_places=2)
    confidence = models.FloatField()

    class Meta:
        db_table = "user_merchant_affinity_stage"


class PageSnapshot(models.Model):
    """An event aggregate the /optimize/ page draws, computed by the daily job instead of on each request.

    ``name`` is what it holds ("open_heatmap": opens by weekday x local hour; "offer_outcomes": the
    population's sends, conversions and revenue per segment and offer); ``data`` is its JSON.
    """

    name = models.CharField(max_length=64, unique=True)
    data = models.JSONField(default=dict)
    computed_at = models.DateTimeField(default=now)

    class Meta:
        db_table = "optimizer_page_snapshots"

    def __str__(self) -> str:
        return f"{self.name} ({self.computed_at:%Y-%m-%d %H:%M})"
