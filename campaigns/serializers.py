"""API shapes of the shared domain. Related objects travel by their external ids."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns import configuration
from campaigns.models import Campaign, CampaignChange, Customer, Merchant, Offer, Segment
from campaigns.services import MAX_API_BATCH
from marketing_ai.api import ClockTimeField


class MerchantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Merchant
        fields = ["merchant_id", "name", "category", "created_at"]
        read_only_fields = ["created_at"]

    def get_fields(self):
        fields = super().get_fields()
        if isinstance(self.instance, Merchant):
            # The external id is the key in the URL; renaming it would break every reference.
            fields["merchant_id"].read_only = True
        return fields


class OfferSerializer(serializers.ModelSerializer):
    class Meta:
        model = Offer
        fields = ["offer_id", "kind", "value", "description"]


class SegmentOfferSerializer(serializers.Serializer):
    """One segment's own offer in a campaign (segments not listed get the campaign default)."""

    segment = serializers.SlugRelatedField(slug_field="name", queryset=Segment.objects.all(), help_text="Segment name")
    offer_id = serializers.SlugRelatedField(
        source="offer", slug_field="offer_id", queryset=Offer.objects.all(), help_text="Offer external id"
    )
    offer = OfferSerializer(read_only=True)


class CampaignSerializer(serializers.ModelSerializer):
    merchant_id = serializers.SlugRelatedField(
        source="merchant", slug_field="merchant_id", queryset=Merchant.objects.all(), allow_null=True, required=False,
        help_text="The merchant's external id, e.g. m_7",
    )
    merchant_name = serializers.SerializerMethodField(help_text="The merchant's name; null without a merchant")
    current_offer_id = serializers.SlugRelatedField(
        source="current_offer", slug_field="offer_id", queryset=Offer.objects.all(), allow_null=True, required=False,
        help_text="The current offer's external id, e.g. off_25pct",
    )
    current_offer = OfferSerializer(read_only=True, allow_null=True)
    target_segments = serializers.SlugRelatedField(
        slug_field="name", queryset=Segment.objects.all(), many=True, required=False,
        help_text="Segment names, e.g. [\"new_users\", \"high_value_users\"]",
    )
    send_time = ClockTimeField(allow_null=True, required=False, help_text="Current send time, HH:MM in UTC")
    segment_offers = SegmentOfferSerializer(
        many=True, required=False,
        help_text="Per-segment offers overriding current_offer (the campaign default). A write replaces the "
        "whole list: a segment left out follows the default again.",
    )
    promoted_merchants = serializers.SlugRelatedField(
        slug_field="merchant_id", queryset=Merchant.objects.all(), many=True, required=False,
        help_text="Merchant ids this campaign cross-promotes (what applying a merchant recommendation adds to)",
    )

    class Meta:
        model = Campaign
        fields = [
            "campaign_id", "name", "merchant_id", "merchant_name", "status", "channel", "start_date", "end_date",
            "budget", "current_offer_id", "current_offer", "send_time", "send_time_policy", "target_segments",
            "segment_offers", "promoted_merchants", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_merchant_name(self, campaign: Campaign) -> str | None:
        return campaign.merchant.name if campaign.merchant_id else None

    def get_fields(self):
        fields = super().get_fields()
        if isinstance(self.instance, Campaign):
            fields["campaign_id"].read_only = True  # the key in the URL
        return fields

    def validate(self, attrs: dict) -> dict:
        start = attrs.get("start_date", getattr(self.instance, "start_date", None))
        end = attrs.get("end_date", getattr(self.instance, "end_date", None))
        if start and end and end < start:
            raise serializers.ValidationError({"end_date": f"{end} is before start_date {start}"})
        segments = [row["segment"].name for row in attrs.get("segment_offers", [])]
        repeated = sorted({n for n in segments if segments.count(n) > 1})
        if repeated:
            raise serializers.ValidationError({"segment_offers": [f"one offer per segment; repeated: {', '.join(repeated)}"]})
        return attrs

    def create(self, validated_data: dict) -> Campaign:
        return configuration.campaign_create(validated_data, user=self.context["request"].user)

    def update(self, instance: Campaign, validated_data: dict) -> Campaign:
        return configuration.campaign_update(instance, validated_data, user=self.context["request"].user)


class CampaignChangeSerializer(serializers.ModelSerializer):
    change_id = serializers.IntegerField(source="pk", read_only=True)
    campaign_id = serializers.CharField(source="campaign.campaign_id", read_only=True)
    changed_by = serializers.CharField(source="changed_by.username", read_only=True, default=None)
    reverts = serializers.IntegerField(source="reverts_id", read_only=True, allow_null=True, help_text="The change this one undid")

    class Meta:
        model = CampaignChange
        fields = [
            "change_id", "campaign_id", "changed_at", "changed_by", "field", "segment", "old_value", "new_value",
            "source", "note", "reverts",
        ]
        read_only_fields = fields


class CustomerSerializer(serializers.ModelSerializer):
    segment = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = Customer
        fields = ["customer_id", "signup_date", "timezone", "segment", "created_at"]


class EventInSerializer(serializers.Serializer):
    """The event wire format, for the OpenAPI schema. Rows are checked by ``services.validate_event_row``."""

    event_id = serializers.CharField(max_length=64, help_text="Client-chosen unique id: the idempotency key")
    type = serializers.ChoiceField(
        choices=["notification_sent", "notification_opened", "view", "click", "conversion", "spend"]
    )
    occurred_at = serializers.DateTimeField(
        help_text="ISO 8601 with a UTC offset, e.g. 2025-03-01T09:15:00+01:00 (naive times are rejected); "
        "at most one day in the future"
    )
    customer_id = serializers.CharField(
        max_length=64, required=False, help_text="Required except for spend; created on first sight (time zone UTC)"
    )
    campaign_id = serializers.CharField(max_length=64, help_text="Must be a known campaign")
    merchant_id = serializers.CharField(max_length=64, required=False, help_text="Created on first sight")
    offer_id = serializers.CharField(max_length=64, required=False, help_text="Must be a known offer")
    variant = serializers.CharField(max_length=64, required=False, help_text="A/B variant name, if any")
    channel = serializers.RegexField(
        r"^[a-z][a-z0-9_]{0,31}$", max_length=32, required=False,
        help_text="Optional: the channel the event came through (email, push, sms, in_app, ...): 1-32 of a-z 0-9 _, "
        "starting with a letter",
    )
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=0, required=False, coerce_to_string=True,
        help_text="Decimal string or number, >= 0, at most 2 decimals. Required for conversion (revenue) and "
        "spend (cost); not allowed on other types",
    )


class EventBatchSerializer(serializers.Serializer):
    events = EventInSerializer(many=True, max_length=MAX_API_BATCH, help_text=f"Up to {MAX_API_BATCH} events")


class IngestResultSerializer(serializers.Serializer):
    stored = serializers.IntegerField(help_text="Events written by this request")
    duplicates = serializers.IntegerField(help_text="Events whose event_id we already had (or repeated in the batch)")
    customers_created = serializers.IntegerField()
    merchants_created = serializers.IntegerField()
