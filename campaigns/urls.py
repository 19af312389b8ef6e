"""URL lists included by marketing_ai/urls.py (see its docstring)."""

from campaigns import api
from marketing_ai.routing import Router, api_path

router = Router()
router.register("campaigns", api.CampaignViewSet, basename="campaign")
router.register(r"campaigns/(?P<campaign_id>[^/]+)/changes", api.CampaignChangeViewSet, basename="campaign-change")
router.register("merchants", api.MerchantViewSet, basename="merchant")
router.register("customers", api.CustomerViewSet, basename="customer")

api_v1_patterns: list = [
    api_path("events", api.EventIngestView.as_view(), name="events-ingest"),
    *router.urls,
]
seed_patterns: list = []
page_patterns: list = []
