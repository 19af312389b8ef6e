"""Output shapes of the optimisation API (the seed's fields first, then ours)."""

from __future__ import annotations

from rest_framework import serializers

from marketing_ai.api import ClockTimeField, StrictCharField
from optimizer.models import CampaignOptimization, MLModel, UserMerchantAffinity, UserSendTime

# How a due customer's send time was chosen (one named choice set in the API schema).
DUE_METHODS = ("personal", "fallback", "fixed")


class OptimizationSerializer(serializers.ModelSerializer):
    optimization_id = serializers.IntegerField(source="pk", read_only=True)
    campaign_id = serializers.CharField(source="campaign.campaign_id", read_only=True)
    applied_by = serializers.CharField(source="applied_by.username", read_only=True, default=None)

    class Meta:
        model = CampaignOptimization
        fields = [
            "optimization_id",
            "campaign_id",
            "recommendation_type",
            "target",
            "current_value",
            "recommended_value",
            "expected_impact",
            "confidence",
            "affected_users",
            "priority",
            "status",
            "rationale",
            "details",
            "applied_by",
            "applied_at",
            "created_at",
            "live_value",
            "applied_change",
        ]
        read_only_fields = fields


class ImpactIntervalSerializer(serializers.Serializer):
    low = serializers.FloatField()
    high = serializers.FloatField()
    level = serializers.FloatField(help_text="Posterior probability inside the interval, e.g. 0.9")


class PreviewSerializer(serializers.Serializer):
    """What applying a proposal would do now, computed against the campaign's live values."""

    optimization_id = serializers.IntegerField()
    campaign_id = serializers.CharField()
    recommendation_type = serializers.CharField()
    field = serializers.CharField(help_text="The campaign setting it changes: offer, send_time, target_segments, promoted_merchants")
    segment = serializers.CharField(help_text="For offer: the segment whose own offer changes")
    status = serializers.CharField()
    from_value = serializers.CharField(help_text="The live value now (canonical: offer id, HH:MM, sorted names/ids)")
    to_value = serializers.CharField(help_text="The value apply would write")
    from_label = serializers.CharField()
    to_label = serializers.CharField()
    computed_against = serializers.CharField(help_text="The live value the proposal was computed against")
    stale = serializers.BooleanField(help_text="The live value changed since: apply would be refused (409); regenerate")
    can_apply = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True, help_text="Why apply would be refused, if it would")
    reach = serializers.IntegerField(help_text="Customers affected (affected_users)")
    expected_impact = serializers.FloatField()
    impact_unit = serializers.CharField()
    impact_interval = ImpactIntervalSerializer(allow_null=True)
    interval_note = serializers.CharField(allow_blank=True)
    confidence = serializers.FloatField()
    rationale = serializers.CharField(allow_blank=True)


class OfferAnswerSerializer(serializers.Serializer):
    segment = serializers.CharField()
    current_offer = serializers.FloatField(allow_null=True)
    recommended_offer = serializers.FloatField(allow_null=True)
    expected_lift = serializers.FloatField(help_text="Relative change of expected profit per send, percent")
    affected_users = serializers.IntegerField()
    confidence = serializers.FloatField(allow_null=True, help_text="P(recommended offer beats the current one)")
    status = serializers.CharField(help_text="proposed, applied, dismissed, or keep (no change proposed)")
    recommendation_id = serializers.IntegerField(allow_null=True)
    decided = serializers.BooleanField(
        help_text="The data decide: a proposal, or a keep whose current offer beats the runner-up offer with P >= 0.95"
    )
    sends_needed = serializers.IntegerField(
        allow_null=True,
        help_text="Undecided keep: more sends of the two offers compared that would decide (0 when decided; null: no amount would)",
    )
    reason = serializers.CharField(help_text="Why: the proposal's rationale, or why the current offer is kept")


class SegmentAnswerSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    segment = serializers.CharField()
    users_count = serializers.IntegerField()
    expected_conversion_rate = serializers.FloatField()
    expected_roi = serializers.FloatField(help_text="(revenue - cost) / cost, as a ratio")
    probability_profitable = serializers.FloatField()
    sends = serializers.IntegerField()
    conversions = serializers.IntegerField()


class SendTimeAnswerSerializer(serializers.Serializer):
    customer_id = serializers.CharField()
    optimal_send_time = serializers.CharField(help_text="HH:MM in the customer's time zone")
    expected_improvement = serializers.FloatField(help_text="Expected relative open-rate improvement, percent")
    method = serializers.ChoiceField(choices=UserSendTime.Method.choices)
    events_used = serializers.IntegerField()
    timezone = serializers.CharField()
    optimal_send_time_utc = serializers.CharField()
    confidence = serializers.FloatField()
    last_updated = serializers.DateTimeField(allow_null=True)


class AffinityAnswerSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    merchant_id = serializers.CharField()
    merchant_name = serializers.CharField()
    affinity_score = serializers.FloatField()
    engagement_level = serializers.CharField()
    avg_purchase_value = serializers.DecimalField(max_digits=14, decimal_places=2)
    confidence = serializers.FloatField()
    method = serializers.CharField(help_text="personal, or fallback (popular merchants) without data")


class SendTimeRowSerializer(serializers.ModelSerializer):
    customer_id = serializers.CharField(source="customer.customer_id")
    optimal_send_time = ClockTimeField(source="local_send_time")
    optimal_send_time_utc = ClockTimeField(source="utc_send_time")

    class Meta:
        model = UserSendTime
        fields = [
            "customer_id", "optimal_send_time", "optimal_send_time_utc", "expected_improvement",
            "confidence", "events_used", "method", "last_updated",
        ]


class AffinityRowSerializer(serializers.ModelSerializer):
    customer_id = serializers.CharField(source="customer.customer_id")
    merchant_id = serializers.CharField(source="merchant.merchant_id")
    merchant_name = serializers.CharField(source="merchant.name")

    class Meta:
        model = UserMerchantAffinity
        fields = [
            "customer_id", "rank", "merchant_id", "merchant_name", "affinity_score",
            "engagement_level", "avg_purchase_value", "confidence", "last_updated",
        ]


class MLModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = MLModel
        fields = [
            "id", "model_type", "version", "algorithm", "primary_metric", "accuracy", "metrics",
            "train_start", "train_end", "train_rows", "holdout_rows", "features", "artifact_sha256",
            "is_active", "promotion_note", "last_trained", "created_at",
        ]


# --- Per-customer send times for a notification service ---------------------------------------------
class SendTimeLookupInput(serializers.Serializer):
    customer_ids = serializers.ListField(
        child=StrictCharField(max_length=64, allow_blank=False),
        min_length=1,
        help_text="Customers to look up (at most MAX_SEND_TIME_LOOKUP = 1000; repeats answered once)",
    )

    def validate_customer_ids(self, value: list[str]) -> list[str]:
        from optimizer.selectors import MAX_SEND_TIME_LOOKUP

        if len(value) > MAX_SEND_TIME_LOOKUP:
            raise serializers.ValidationError(f"at most {MAX_SEND_TIME_LOOKUP} customer ids per look-up, got {len(value)}")
        return value


class SendTimeLookupSerializer(serializers.Serializer):
    results = SendTimeAnswerSerializer(many=True)
    missing = serializers.ListField(child=serializers.CharField(), help_text="Asked-for ids with no such customer")


class DueCustomerSerializer(serializers.Serializer):
    customer_id = serializers.CharField()
    timezone = serializers.CharField()
    send_at = serializers.DateTimeField(help_text="When to send, UTC (within the hour asked for)")
    local_send_time = serializers.CharField(help_text="HH:MM in the customer's time zone")
    method = serializers.ChoiceField(
        choices=DUE_METHODS,
        help_text="personal: the customer's own best hour; fallback: the population hour (too few opens); fixed: the campaign's one UTC time",
    )
