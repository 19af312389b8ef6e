"""A/B tests: the test and its variants, who saw which variant, and each analysis.

Table names follow the seed (``ab_tests``, ``ab_test_assignments``, ``ab_test_results``); variants
live in their own table ``ab_test_variants`` because a test may have more than two arms. The seed's
``variant_a_name``/``variant_b_name`` are the names of the first two variants (position 0 is control).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from campaigns.models import Campaign, Customer, Offer

CONFIDENCE_MIN = 0.80
CONFIDENCE_MAX = 0.999


def new_test_id() -> str:
    return f"test_{secrets.token_hex(6)}"


class ABTest(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        COMPLETED = "completed"

    class Metric(models.TextChoices):
        CONVERSION_RATE = "conversion_rate", "conversion rate"
        REVENUE_PER_USER = "revenue_per_user", "revenue per user"

    test_id = models.CharField(max_length=64, unique=True, default=new_test_id, help_text="Public id, e.g. test_ab12cd34ef56")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="ab_tests")
    test_name = models.CharField(max_length=200)
    hypothesis = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    primary_metric = models.CharField(max_length=32, choices=Metric.choices, default=Metric.CONVERSION_RATE)
    # Metrics that must not get significantly worse for a winner to be declared (names of abtests.metrics.METRICS).
    guardrail_metrics = models.JSONField(default=list, blank=True)
    # Reported with their own intervals, p-values adjusted across them by ``multiple_testing``.
    secondary_metrics = models.JSONField(default=list, blank=True)

    class Correction(models.TextChoices):
        HOLM = "holm", "Holm (family-wise error rate)"
        BH = "bh", "Benjamini-Hochberg (false discovery rate)"

    multiple_testing = models.CharField(max_length=8, choices=Correction.choices, default=Correction.HOLM)
    # CUPED: adjust each metric by the customer's own value in the weeks before the test started, where
    # such pre-period data exist (abtests/cuped.py).
    cuped = models.BooleanField(default=True)
    sample_size_target = models.PositiveIntegerField(help_text="Planned users across all variants")
    confidence_level = models.FloatField(
        default=0.95, validators=[MinValueValidator(CONFIDENCE_MIN), MaxValueValidator(CONFIDENCE_MAX)]
    )
    # Sequential tests use always-valid p-values, so looking every day does not inflate false positives.
    sequential = models.BooleanField(default=False)
    hashing_seed = models.CharField(max_length=64, blank=True, help_text="Defaults to the test id")
    # Mutual exclusion. Always: a customer is in at most one running test of a campaign. With a namespace:
    # the customer's namespace bucket (one hash per namespace and customer) must fall in
    # [namespace_start, namespace_end), and running tests of one namespace hold disjoint ranges, so tests
    # on different campaigns never share a customer either.
    namespace = models.SlugField(max_length=64, blank=True, default="")
    namespace_start = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    namespace_end = models.FloatField(default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    winner = models.CharField(max_length=64, blank=True, help_text="Winning variant name; empty if none")
    # What ending the test with apply_winner changed on the campaign, e.g. {"current_offer": "off_25pct"}.
    applied = models.JSONField(default=dict, blank=True)
    # Free text for the team (what was learned, follow-ups): the one field the admin may still edit
    # once the test is completed; everything else about a completed test is a fact.
    notes = models.TextField(blank=True, default="")
    # Changes with every write to this row, its variants or its stored results (bump_data_version): with the
    # arm sums' write counters it is the version the API's cached answers are keyed by (abtests/answers.py).
    data_version = models.BigIntegerField(default=0, editable=False)

    class Meta:
        verbose_name = "A/B test"
        verbose_name_plural = "A/B tests"
        db_table = "ab_tests"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.test_name} ({self.test_id})"

    def save(self, *args, **kwargs) -> None:
        if not self.hashing_seed:
            self.hashing_seed = self.test_id
        if self._state.adding:
            super().save(*args, **kwargs)
            return
        # An update: bump the version in the same UPDATE (an increment, so a stale instance cannot write an
        # old value back), then read the new value so the instance stays usable.
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = [*kwargs["update_fields"], "data_version"]
        self.data_version = models.F("data_version") + 1
        super().save(*args, **kwargs)
        self.refresh_from_db(fields=["data_version"])

    @property
    def ordered_variants(self) -> list[ABTestVariant]:
        return sorted(self.variants.all(), key=lambda v: v.position)

    @property
    def variant_a_name(self) -> str:
        variants = self.ordered_variants
        return variants[0].name if variants else ""

    @property
    def variant_b_name(self) -> str:
        variants = self.ordered_variants
        return variants[1].name if len(variants) > 1 else ""


def bump_data_version(test_pks) -> None:
    """A write the A/B answers read (a variant, a stored result, an update() of the test row) happened: the
    tests' cached answers are stale. Call it in the writing transaction."""
    ABTest.objects.filter(pk__in=list(test_pks)).update(data_version=models.F("data_version") + 1)


def variant_or_result_written(*, instance, **_) -> None:
    """post_save / post_delete of a variant or a stored result (connected in abtests/apps.py)."""
    bump_data_version([instance.test_id])


class ABTestVariant(models.Model):
    """One arm. Position 0 is the control. Optional config is what "apply the winner" copies to the campaign."""

    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="variants")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=64)
    weight = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    offer = models.ForeignKey(Offer, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    send_time = models.TimeField(null=True, blank=True, help_text="UTC send time this variant uses")

    class Meta:
        db_table = "ab_test_variants"
        ordering = ["test", "position"]
        constraints = [
            models.UniqueConstraint(fields=["test", "position"], name="ab_variant_unique_position"),
            models.UniqueConstraint(fields=["test", "name"], name="ab_variant_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.weight:g})"


class ABTestAssignment(models.Model):
    """The first variant a customer got in a test; asking again returns this row."""

    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="assignments")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="ab_assignments")
    variant = models.ForeignKey(ABTestVariant, on_delete=models.CASCADE, related_name="assignments")
    assigned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "A/B test assignment"
        db_table = "ab_test_assignments"
        constraints = [models.UniqueConstraint(fields=["test", "customer"], name="ab_assignment_unique_customer")]
        indexes = [models.Index(fields=["test", "variant"], name="ab_assignment_test_variant")]

    def __str__(self) -> str:
        return f"{self.customer_id} -> {self.variant_id} in {self.test_id}"


class ABTestResult(models.Model):
    """One analysis of a test: per-variant figures, the test statistics and the decision."""

    class Decision(models.TextChoices):
        WINNER = "winner"
        INCONCLUSIVE = "inconclusive"
        SRM = "srm", "sample ratio mismatch"

    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="results")
    calculated_at = models.DateTimeField(default=timezone.now, db_index=True)
    method = models.CharField(max_length=32, help_text="fixed (chi-squared / z-test), sequential, or welch")
    metric = models.CharField(max_length=32, choices=ABTest.Metric.choices)
    # [{name, users, conversions, rate, revenue_mean, revenue_variance, lift, ci_low, ci_high, p_value,
    #   p_value_adjusted, chance_to_beat_control, expected_loss}]
    variants = models.JSONField(default=list)
    users_total = models.PositiveIntegerField(default=0)
    variant_a_conversions = models.PositiveIntegerField(default=0)
    variant_b_conversions = models.PositiveIntegerField(default=0)
    # Headline figures for the best treatment vs control (percent for lift and its interval).
    lift = models.FloatField(null=True, blank=True)
    lift_ci_low = models.FloatField(null=True, blank=True)
    lift_ci_high = models.FloatField(null=True, blank=True)
    p_value = models.FloatField(null=True, blank=True)
    statistical_significance = models.FloatField(null=True, blank=True, help_text="(1 - p) x 100")
    significant = models.BooleanField(default=False)
    chi2 = models.FloatField(null=True, blank=True)
    srm_p_value = models.FloatField(null=True, blank=True)
    srm_detected = models.BooleanField(default=False)
    chance_to_beat_control = models.FloatField(null=True, blank=True)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    winner = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    users_still_needed = models.PositiveIntegerField(null=True, blank=True)
    recommended_action = models.TextField(blank=True)
    # Goal, secondary and guardrail metrics per treatment (abtests.metrics.MetricResult.as_dict).
    metrics = models.JSONField(default=list, blank=True)
    # The goal metric's CUPED adjustment: {applied, reason, theta, variance_reduction, correlation, pre_period_days}.
    cuped = models.JSONField(default=dict, blank=True)
    # Users and conversions per arm: the hourly job writes a new row only when this changes.
    fingerprint = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = "A/B test result"
        db_table = "ab_test_results"
        ordering = ["-calculated_at", "-id"]
        indexes = [models.Index(fields=["test", "-calculated_at"], name="ab_result_test_latest")]

    def __str__(self) -> str:
        return f"{self.test_id} {self.decision} at {self.calculated_at:%Y-%m-%d %H:%M}"


class ABTestCustomerOutcome(models.Model):
    """One assigned customer's counted values for one event type, kept up to date as events and
    assignments arrive (``abtests/rollup.py``). Only customers with such an event have a row.

    y: the in-test events that count (attribution rule in ``selectors``); x: the pre-period ones (CUPED's
    covariate). ``*_any``: at least one such event; the others: the sum of their amounts (0 without one)."""

    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="+")
    # Indexed: deleting customers (an erasure, a demo --replace) checks and cascades through this column, and
    # without an index each deleted customer scans the whole table (300k customers deleted at once: > 25 min).
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    variant = models.ForeignKey(ABTestVariant, on_delete=models.CASCADE, related_name="+", db_index=False)
    event_type = models.CharField(max_length=24)
    y_any = models.BooleanField(default=False)
    y = models.FloatField(default=0.0)
    x_any = models.BooleanField(default=False)
    x = models.FloatField(default=0.0)

    class Meta:
        db_table = "ab_test_customer_outcomes"
        constraints = [models.UniqueConstraint(fields=["test", "customer", "event_type"],
                                               name="ab_outcome_unique_customer_type")]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.event_type} in {self.test_id}"


class ABTestArmSums(models.Model):
    """Per variant and event type, the sums over its customers' outcomes that the analysis reads
    (sufficient statistics: Σ, Σ² and the CUPED cross terms), updated by deltas in the transaction that
    changes an outcome. The row with an empty ``event_type`` holds the variant's assigned ``users``.
    A test has these rows once its rollup is kept (from its start, or after ``rebuild_abtest_rollups``);
    without them the analysis reads the raw events."""

    test = models.ForeignKey(ABTest, on_delete=models.CASCADE, related_name="+")
    variant = models.ForeignKey(ABTestVariant, on_delete=models.CASCADE, related_name="+", db_index=False)
    event_type = models.CharField(max_length=24, blank=True)
    users = models.BigIntegerField(default=0)
    customers = models.BigIntegerField(default=0)
    y = models.FloatField(default=0.0)
    y_sq = models.FloatField(default=0.0)
    x_customers = models.BigIntegerField(default=0)
    x = models.FloatField(default=0.0)
    x_sq = models.FloatField(default=0.0)
    xy_customers = models.BigIntegerField(default=0)
    xy = models.FloatField(default=0.0)
    # Incremented by every write of this row (in the same UPDATE as the deltas, abtests/rollup.py): the sum
    # over a test's rows changes with each counted event and assignment without locking the test's row.
    version = models.BigIntegerField(default=0)

    class Meta:
        db_table = "ab_test_arm_sums"
        constraints = [models.UniqueConstraint(fields=["variant", "event_type"], name="ab_arm_sums_unique_type")]

    def __str__(self) -> str:
        return f"{self.variant_id} {self.event_type or 'users'}"
