"""GET /api/v1/: the API's entry points (every list or collection URL without a path parameter), and its docs."""

from __future__ import annotations

from django.urls import NoReverseMatch, URLPattern, reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class ApiRootSerializer(serializers.Serializer):
    endpoints = serializers.DictField(child=serializers.URLField(), help_text="URL name -> absolute URL")
    schema = serializers.URLField()
    docs = serializers.URLField(help_text="Swagger UI")
    redoc = serializers.URLField()


def entry_points() -> dict[str, str]:
    """Name -> path of every v1 URL that takes no path parameter (what a client can call first)."""
    from marketing_ai import urls

    found = {}
    for pattern in urls.api_v1:
        if not isinstance(pattern, URLPattern) or not pattern.name or pattern.name.endswith("-detail"):
            continue
        try:
            found[pattern.name] = reverse(pattern.name)
        except NoReverseMatch:  # it needs a parameter (an id)
            continue
    return dict(sorted(found.items()))


class ApiRootView(APIView):
    @extend_schema(responses=ApiRootSerializer)
    def get(self, request: Request) -> Response:
        """The entry points of the v1 API and where its schema and documentation are."""
        absolute = request.build_absolute_uri
        return Response(ApiRootSerializer({
            "endpoints": {name: absolute(path) for name, path in entry_points().items()},
            "schema": absolute(reverse("schema")),
            "docs": absolute(reverse("swagger-ui")),
            "redoc": absolute(reverse("redoc")),
        }).data)
