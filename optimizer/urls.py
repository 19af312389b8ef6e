"""URL lists included by marketing_ai/urls.py (see its docstring).

v1: /api/v1/optimize/{recommendations,send-times,affinities,models}/ plus per-campaign and per-customer
answers; the seed's /api/optimize/... paths are aliases of the same views.
"""

from django.urls import path

from marketing_ai.routing import Router, api_path
from optimizer import api, hub, views

router = Router()
router.register("optimize/recommendations", api.OptimizationViewSet, basename="optimization")
router.register("optimize/send-times", api.SendTimeViewSet, basename="send-time")
router.register("optimize/affinities", api.AffinityViewSet, basename="affinity")
router.register("optimize/models", api.ModelRegistryViewSet, basename="ml-model")

api_v1_patterns: list = [
    api_path("optimize/campaigns/<str:campaign_id>/offer", api.CampaignOfferView.as_view(), name="optimize-campaign-offer"),
    api_path("optimize/campaigns/<str:campaign_id>/segments", api.CampaignSegmentsView.as_view(), name="optimize-campaign-segments"),
    api_path(
        "optimize/campaigns/<str:campaign_id>/recommendations",
        api.CampaignRecommendationsView.as_view(),
        name="optimize-campaign-recommendations",
    ),
    api_path(
        "optimize/campaigns/<str:campaign_id>/regenerate",
        api.CampaignRegenerateView.as_view(),
        name="optimize-campaign-regenerate",
    ),
    api_path("optimize/campaigns/<str:campaign_id>/due", api.CampaignDueView.as_view(), name="optimize-campaign-due"),
    api_path("optimize/send-time-lookup", api.SendTimeLookupView.as_view(), name="optimize-send-time-lookup"),
    api_path("optimize/customers/<str:user_id>/send-time", api.CustomerSendTimeView.as_view(), name="optimize-customer-send-time"),
    api_path("optimize/customers/<str:user_id>/affinity", api.CustomerAffinityView.as_view(), name="optimize-customer-affinity"),
    *router.urls,
]

seed_patterns: list = [
    api_path("optimize/offer/<campaign_id>", api.CampaignOfferView.as_view(), name="seed-optimize-offer"),
    api_path("optimize/send-time/<user_id>", api.CustomerSendTimeView.as_view(), name="seed-optimize-send-time"),
    api_path("optimize/affinity/<user_id>", api.CustomerAffinityView.as_view(), name="seed-optimize-affinity"),
    api_path("optimize/recommendations/<campaign_id>", api.CampaignRecommendationsView.as_view(), name="seed-optimize-recommendations"),
    api_path("optimize/segments/<campaign_id>", api.CampaignSegmentsView.as_view(), name="seed-optimize-segments"),
]

page_patterns: list = [
    path("optimize/", views.optimize_page, name="optimize-page"),
    path("optimize/recommendations/<int:pk>/<str:verb>", views.optimization_action, name="optimize-action"),
    path("optimize/campaigns/<extid:campaign_id>/<str:verb>", hub.hub_action, name="optimize-hub-action"),
]
