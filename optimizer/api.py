"""Optimisation API: v1 viewsets and the per-campaign / per-customer answers the seed's paths alias.

Reads need a login; apply and dismiss (POST) need the marketer role (``RolePermission``).
"""

from __future__ import annotations

import datetime as dt

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from marketing_ai.api import INGEST, BadRequest, RolePermission, WholeBodyJSONParser, _group_names
from marketing_ai.filters import ListFilterBackend
from optimizer import filters, selectors, serializers
from optimizer.models import CampaignOptimization, MLModel, UserMerchantAffinity, UserSendTime
from optimizer.services import recommendations as services

Opt = CampaignOptimization


class OptimizationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Campaign optimisation proposals, best first (priority, then expected impact)."""

    serializer_class = serializers.OptimizationSerializer
    filter_backends = [ListFilterBackend]
    filterset_class = filters.OptimizationFilter

    def get_queryset(self):
        return selectors.optimization_list()

    @extend_schema(request=None, responses=serializers.OptimizationSerializer)
    @action(detail=True, methods=["post"])
    def apply(self, request, pk=None):
        """One-click apply: the campaign takes the recommended offer (for the proposal's segment only), send time,
        segments or promoted partner; the change is logged. Idempotent. 409 if superseded or dismissed, and 409
        (code ``stale_value``) if the live value changed since the proposal was computed: regenerate."""
        opt = services.apply_optimization(self.get_object(), request.user)
        return Response(serializers.OptimizationSerializer(opt).data)

    @extend_schema(responses=serializers.PreviewSerializer)
    @action(detail=True, methods=["get"])
    def preview(self, request, pk=None):
        """What apply would change now: from -> to (live), reach, expected impact with its interval, staleness."""
        return Response(serializers.PreviewSerializer(selectors.optimization_preview(self.get_object())).data)

    @extend_schema(request=None, responses=serializers.OptimizationSerializer)
    @action(detail=True, methods=["post"])
    def undo(self, request, pk=None):
        """Revert an applied proposal to the value before it (logged as an undo). Idempotent; 409 if the value changed since."""
        opt = services.undo_optimization(self.get_object(), request.user)
        return Response(serializers.OptimizationSerializer(opt).data)

    @extend_schema(request=None, responses=serializers.OptimizationSerializer)
    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        opt = services.dismiss_optimization(self.get_object(), request.user)
        return Response(serializers.OptimizationSerializer(opt).data)


class SendTimeViewSet(viewsets.ReadOnlyModelViewSet):
    """Precomputed send times; ``retrieve`` by customer_id answers with the fallback when none is computed."""

    serializer_class = serializers.SendTimeRowSerializer
    lookup_field = "customer_id"
    lookup_value_regex = "[^/]+"

    filter_backends = [ListFilterBackend]
    filterset_class = filters.SendTimeFilter

    def get_queryset(self):
        return UserSendTime.objects.select_related("customer").order_by("customer__customer_id")

    @extend_schema(responses=serializers.SendTimeAnswerSerializer)
    def retrieve(self, request, customer_id=None):
        answer = selectors.send_time_answer(selectors.customer_by_id(customer_id))
        return Response(serializers.SendTimeAnswerSerializer(answer).data)


class AffinityViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = serializers.AffinityRowSerializer
    filter_backends = [ListFilterBackend]
    filterset_class = filters.AffinityFilter

    def get_queryset(self):
        return UserMerchantAffinity.objects.select_related("customer", "merchant").order_by("customer__customer_id", "rank")


class ModelRegistryViewSet(viewsets.ReadOnlyModelViewSet):
    """The model registry: every trained version with its holdout metrics; the active one is the champion."""

    serializer_class = serializers.MLModelSerializer
    filter_backends = [ListFilterBackend]
    filterset_class = filters.ModelFilter

    def get_queryset(self):
        return MLModel.objects.order_by("model_type", "-version")


# --- Per-campaign and per-customer answers (v1 and the seed's paths) ------------------------------
class CampaignOfferView(APIView):
    @extend_schema(responses=serializers.OfferAnswerSerializer(many=True))
    def get(self, request, campaign_id: str):
        """Offer per segment: segment, current_offer, recommended_offer, expected_lift, affected_users, confidence."""
        rows = selectors.offer_answer(selectors.campaign_by_id(campaign_id))
        return Response(serializers.OfferAnswerSerializer(rows, many=True).data)


class CampaignSegmentsView(APIView):
    @extend_schema(responses=serializers.SegmentAnswerSerializer(many=True))
    def get(self, request, campaign_id: str):
        """Segments ranked by expected ROI and conversion rate for this campaign."""
        rows = selectors.segment_answer(selectors.campaign_by_id(campaign_id))
        return Response(serializers.SegmentAnswerSerializer(rows, many=True).data)


class CampaignRegenerateView(APIView):
    @extend_schema(request=None, responses=serializers.OptimizationSerializer(many=True))
    def post(self, request, campaign_id: str):
        """Recompute this campaign's proposals now, against its live values; answers its open proposals."""
        campaign = selectors.campaign_by_id(campaign_id)
        services.regenerate_for_campaign(campaign)
        rows = selectors.optimization_list(campaign_id=campaign.campaign_id, status=Opt.Status.PROPOSED)
        return Response(serializers.OptimizationSerializer(rows, many=True).data)


class CampaignRecommendationsView(APIView):
    @extend_schema(responses=serializers.OptimizationSerializer(many=True))
    def get(self, request, campaign_id: str):
        """The campaign's proposals (proposed, applied, dismissed), best first."""
        rows = selectors.campaign_recommendations(selectors.campaign_by_id(campaign_id))
        return Response(serializers.OptimizationSerializer(rows, many=True).data)


class CustomerSendTimeView(APIView):
    @extend_schema(responses=serializers.SendTimeAnswerSerializer)
    def get(self, request, user_id: str):
        """optimal_send_time (local HH:MM), expected_improvement, method (personal|fallback), events_used."""
        answer = selectors.send_time_answer(selectors.customer_by_id(user_id))
        return Response(serializers.SendTimeAnswerSerializer(answer).data)


class CustomerAffinityView(APIView):
    @extend_schema(responses=serializers.AffinityAnswerSerializer(many=True))
    def get(self, request, user_id: str):
        """Top merchants: merchant_id, merchant_name, affinity_score, engagement_level, avg_purchase_value, confidence."""
        rows = selectors.affinity_answer(selectors.customer_by_id(user_id))
        return Response(serializers.AffinityAnswerSerializer(rows, many=True).data)


# --- Per-customer send times for a notification service ----------------------------------------------
class LookupPermission(RolePermission):
    """A POST that only reads (a batch look-up): whoever may read may call it, except ingest-only accounts."""

    def has_permission(self, request, view) -> bool:
        if request.method != "POST":
            return super().has_permission(request, view)
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return user.is_superuser or _group_names(user) != {INGEST}


class SendTimeLookupView(APIView):
    permission_classes = [LookupPermission]
    # A list of ids is JSON only: a form field would turn any scalar into a one-id list.
    parser_classes = [WholeBodyJSONParser]

    @extend_schema(request=serializers.SendTimeLookupInput, responses=serializers.SendTimeLookupSerializer)
    def post(self, request):
        """Send times of many customers at once (at most 1000): each one's best local hour and its UTC time today."""
        data = serializers.SendTimeLookupInput(data=request.data)
        if not data.is_valid():
            raise BadRequest(data.errors)
        results, missing = selectors.send_time_answers(data.validated_data["customer_ids"])
        return Response(serializers.SendTimeLookupSerializer({"results": results, "missing": missing}).data)


def _hour_param(request) -> dt.datetime:
    """``?hour=`` (ISO date-time; naive means UTC), default the current hour."""
    from django.utils import timezone
    from django.utils.dateparse import parse_datetime

    raw = request.query_params.get("hour")
    if raw in (None, ""):
        return timezone.now()
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None:
        raise BadRequest({"hour": ["must be an ISO 8601 date-time, e.g. 2026-06-01T14:00:00Z"]})
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


class CampaignDueView(generics.ListAPIView):
    """Who should get this campaign in one UTC hour (``?hour=``, default now), by its send-time policy. Paginated."""

    serializer_class = serializers.DueCustomerSerializer

    def get_queryset(self):
        self.campaign = selectors.campaign_by_id(self.kwargs["campaign_id"])
        self.start = _hour_param(self.request)
        queryset, _policy = selectors.campaign_due(self.campaign, self.start)
        return queryset

    def get_serializer(self, *args, **kwargs):
        if args:
            population_hour = selectors.population_local_hour()
            start = self.start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
            args = ([selectors.due_row(c, self.campaign, start, population_hour) for c in args[0]], *args[1:])
        return super().get_serializer(*args, **kwargs)

    @extend_schema(parameters=[OpenApiParameter("hour", str, description="UTC hour to plan, ISO 8601; default: now")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
