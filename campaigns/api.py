"""REST API of the shared domain: campaigns, merchants, customers (by external id) and event ingestion."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns import configuration, filters, selectors, services
from campaigns.models import Campaign, CampaignChange, Merchant
from campaigns.serializers import (
    CampaignChangeSerializer,
    CampaignSerializer,
    CustomerSerializer,
    EventInSerializer,
    IngestResultSerializer,
    MerchantSerializer,
)
from marketing_ai.api import BadRequest, NotFound
from marketing_ai.filters import ListFilterBackend

EXTERNAL_ID = r"[^/]+"


class CampaignViewSet(viewsets.ModelViewSet):
    """Campaigns keyed by ``campaign_id``. Writes take the merchant by ``merchant_id``, the offer by
    ``current_offer_id``, segments by name and ``send_time`` as HH:MM (UTC)."""

    serializer_class = CampaignSerializer
    filter_backends = [ListFilterBackend]
    filterset_class = filters.CampaignFilter
    lookup_field = "campaign_id"
    lookup_value_regex = EXTERNAL_ID

    def get_queryset(self):
        return selectors.campaign_list()

    def perform_destroy(self, instance: Campaign) -> None:
        services.campaign_delete(instance)


class CampaignChangeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A campaign's change log, newest first: who, when, field, segment, from -> to, source. Read-only but for undo."""

    serializer_class = CampaignChangeSerializer
    filter_backends = [ListFilterBackend]
    filterset_class = filters.CampaignChangeFilter
    lookup_value_regex = r"\d+"

    def campaign(self) -> Campaign:
        campaign = Campaign.objects.filter(campaign_id=self.kwargs["campaign_id"]).first()
        if campaign is None:
            raise NotFound(f"No campaign with campaign_id {self.kwargs['campaign_id']!r}.")
        return campaign

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no campaign in the URL
            return CampaignChange.objects.none()
        return selectors.campaign_changes(self.campaign())

    @extend_schema(request=None, responses=CampaignChangeSerializer)
    @action(detail=True, methods=["post"])
    def undo(self, request, campaign_id=None, pk=None):
        """Revert this change to the value before it (409 if the value changed since); logged as an undo."""
        undo = configuration.undo_change(self.get_object(), user=request.user)
        return Response(CampaignChangeSerializer(undo).data)


class MerchantViewSet(viewsets.ModelViewSet):
    """Merchants keyed by ``merchant_id``."""

    serializer_class = MerchantSerializer
    filter_backends = [ListFilterBackend]
    filterset_class = filters.MerchantFilter
    lookup_field = "merchant_id"
    lookup_value_regex = EXTERNAL_ID

    def get_queryset(self):
        return selectors.merchant_list()

    def perform_destroy(self, instance: Merchant) -> None:
        services.merchant_delete(instance)


class CustomerViewSet(viewsets.ReadOnlyModelViewSet):
    """Customers keyed by ``customer_id`` (read-only: they are created by event ingestion)."""

    serializer_class = CustomerSerializer
    filter_backends = [ListFilterBackend]
    filterset_class = filters.CustomerFilter
    lookup_field = "customer_id"
    lookup_value_regex = EXTERNAL_ID

    def get_queryset(self):
        return selectors.customer_list()


EVENT_EXAMPLE = [
    {"event_id": "evt_1001", "type": "notification_opened", "occurred_at": "2025-03-01T09:15:00+01:00",
     "customer_id": "user_42", "campaign_id": "camp_1", "variant": "B"},
    {"event_id": "evt_1002", "type": "conversion", "occurred_at": "2025-03-01T09:40:12Z",
     "customer_id": "user_42", "campaign_id": "camp_1", "merchant_id": "m_7", "offer_id": "off_25pct",
     "variant": "B", "amount": "19.90"},
    {"event_id": "evt_1003", "type": "spend", "occurred_at": "2025-03-01T23:59:00+00:00",
     "campaign_id": "camp_1", "amount": 120.5},
]


class EventIngestView(APIView):
    """``POST /api/v1/events/``: a batch of up to 5,000 events, all stored or none."""

    ingest_allowed = True  # service accounts in the `ingest` group may call this (and nothing else)
    throttle_scope = "ingest"  # its own rate limit (marketing_ai/throttles.py): reads stay served when it is hit

    @extend_schema(
        operation_id="events_ingest",
        summary="Ingest a batch of events",
        description=(
            "Body: a JSON list of events, or `{\"events\": [...]}`, at most 5,000. Every row is validated; if any "
            "row is bad the whole batch is rejected with 400 and `error.fields.rows` lists every bad row as "
            "`{index, field, reason}`, and nothing is stored. `event_id` is the idempotency key: an id we already "
            "have (or one repeated in the batch) is counted in `duplicates`, never stored twice. Customers and "
            "merchants are created on first sight; an unknown campaign or offer is a row error."
        ),
        request=EventInSerializer(many=True),
        responses={201: IngestResultSerializer, 200: IngestResultSerializer, 400: OpenApiTypes.OBJECT},
        examples=[OpenApiExample("A batch", value=EVENT_EXAMPLE, request_only=True)],
    )
    def post(self, request):
        events = request.data.get("events") if isinstance(request.data, dict) else request.data
        if not isinstance(events, list):
            raise BadRequest({"events": ["send a JSON list of events, or {\"events\": [...]}"]})
        if not events:
            raise BadRequest({"events": ["the batch is empty"]})
        if len(events) > services.MAX_API_BATCH:
            raise BadRequest({"events": [f"at most {services.MAX_API_BATCH} events per batch; got {len(events)}"]})
        result = services.ingest_events(events)
        body = IngestResultSerializer(result).data
        # 201 when something new was stored; a pure re-send is a 200 (nothing created).
        return Response(body, status=status.HTTP_201_CREATED if result.stored else status.HTTP_200_OK)
