"""The API's addresses: one trailing-slash rule for every path under /api/.

Every API address answers with or without its trailing slash, for every method (no redirect, so a
POST keeps its body): ``Router`` applies the rule to viewsets and ``api_path`` to single views (the
seed's aliases included). The schema shows each address with its slash; ``reverse()`` gives it without
(Django reverses an optional part as absent); both answer.
"""

from __future__ import annotations

import re

from django.urls import URLPattern, re_path
from rest_framework.routers import SimpleRouter

OPTIONAL_SLASH = "/?"


class Router(SimpleRouter):
    """DRF's SimpleRouter with the API's trailing-slash rule (DRF turns any true ``trailing_slash`` into "/")."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = OPTIONAL_SLASH


def api_path(route: str, view, name: str | None = None) -> URLPattern:
    """A single view at ``route`` under the API's trailing-slash rule.

    ``route`` uses ``<name>`` (or ``<str:name>``) for one path segment:
    ``api_path("analytics/campaign/<campaign_id>/metrics", view)``.
    """
    pattern = re.sub(r"<(?:\w+:)?(\w+)>", r"(?P<\1>[^/]+)", route.strip("/"))
    return re_path(rf"^{pattern}{OPTIONAL_SLASH}$", view, name=name)
