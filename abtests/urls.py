"""URL lists included by marketing_ai/urls.py (see its docstring).

The seed's paths under /api/ab-tests/ are aliases of the v1 viewset's actions: one implementation,
two addresses.
"""

from django.urls import path

from abtests import views
from abtests.api import ABTestViewSet
from marketing_ai.routing import Router, api_path

router = Router()
router.register("ab-tests", ABTestViewSet, basename="abtest")

api_v1_patterns: list = router.urls


def _alias(actions: dict[str, str]):
    return ABTestViewSet.as_view(actions)


seed_patterns: list = [
    api_path("ab-tests/create", _alias({"post": "create"}), name="seed-abtest-create"),
    api_path("ab-tests/history", _alias({"get": "history"}), name="seed-abtest-history"),
    api_path("ab-tests/<test_id>/start", _alias({"post": "start"}), name="seed-abtest-start"),
    api_path("ab-tests/<test_id>/assign", _alias({"post": "assign"}), name="seed-abtest-assign"),
    api_path("ab-tests/<test_id>/status", _alias({"get": "status"}), name="seed-abtest-status"),
    api_path("ab-tests/<test_id>/analyze", _alias({"post": "analyze"}), name="seed-abtest-analyze"),
    api_path("ab-tests/<test_id>/end", _alias({"post": "end"}), name="seed-abtest-end"),
]

page_patterns: list = [
    path("ab-tests/", views.ab_tests_page, name="abtests-page"),
    path("ab-tests/<extid:test_id>/", views.ab_test_detail_page, name="abtests-detail"),
    path("ab-tests/<extid:test_id>/<str:verb>", views.ab_test_transition, name="abtests-transition"),
]
