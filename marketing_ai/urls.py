"""URL map. Each app's urls.py exposes three lists, included here:

- ``api_v1_patterns``: DRF routers and views under /api/v1/
- ``seed_patterns``: thin aliases at the seed's own paths under /api/ (``marketing_ai.routing.api_path``)

Every API address answers with or without its trailing slash: ``marketing_ai.routing.Router`` for viewsets,
``marketing_ai.routing.api_path`` for single views (one rule, ``OPTIONAL_SLASH``).
- ``page_patterns``: server-rendered dashboard pages
"""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from abtests import urls as abtests_urls
from analytics import urls as analytics_urls
from campaigns import urls as campaigns_urls
from marketing_ai import api_root, health, jobs_api, views
from marketing_ai.routing import Router, api_path
from optimizer import urls as optimizer_urls

APPS = (campaigns_urls, analytics_urls, abtests_urls, optimizer_urls)

platform_router = Router()
platform_router.register("jobs", jobs_api.JobViewSet, basename="job")
platform_router.register("job-runs", jobs_api.JobRunViewSet, basename="job-run")

api_v1 = [*platform_router.urls, *(p for app in APPS for p in app.api_v1_patterns)]
seed = [p for app in APPS for p in app.seed_patterns]
pages = [p for app in APPS for p in app.page_patterns]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Under /api/ every address follows the API's one trailing-slash rule (marketing_ai.routing.api_path, Router).
    api_path("api/phase4/health", health.phase4_health, name="phase4-health"),
    api_path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file, so the page needs no inline script (CSP).
    api_path("api/docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    api_path("api/redoc", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"),
    api_path("api/v1", api_root.ApiRootView.as_view(), name="api-root"),
    path("api/v1/", include(api_v1)),
    # Pages link the SVG icon; the admin's and other pages' implicit /favicon.ico request lands on it too.
    path("favicon.ico", RedirectView.as_view(url=f"{settings.STATIC_URL}favicon.svg", permanent=True)),
    path("api/", include(seed)),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", views.home, name="home"),
    path("", include(pages)),
]
