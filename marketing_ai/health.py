"""Health checks: /healthz (process up), /readyz (its dependencies), /api/phase4/health (the seed's)."""

from __future__ import annotations

from django.conf import settings
from django.db import connections
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

import marketing_ai


@require_GET
def healthz(request):
    # Liveness only: no database, no Redis. A frozen dependency must not get the process restarted.
    return JsonResponse({"status": "ok"})


def _check_database(alias: str = "default") -> str | None:
    try:
        with connections[alias].cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    except Exception as exc:  # the reason is what the operator needs
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_redis() -> str | None:
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        timeout = settings.REDIS_SOCKET_TIMEOUT
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout).ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@require_GET
def readyz(request):
    checks = {"database": _check_database(), "redis": _check_redis() if settings.REDIS_URL else None}
    failing = {name: reason for name, reason in checks.items() if reason}
    body = {
        "status": "ready" if not failing else "unavailable",
        "checks": {
            "database": "ok" if "database" not in failing else failing["database"],
            "redis": ("ok" if "redis" not in failing else failing["redis"]) if settings.REDIS_URL else "not configured",
        },
    }
    if "replica" in settings.DATABASES:
        # The analytics reads depend on it (marketing_ai/replica.py): a lost replica takes this instance out.
        reason = _check_database("replica")
        body["checks"]["replica"] = reason or "ok"
        if reason:
            failing["replica"] = reason
            body["status"] = "unavailable"
    if failing:
        body["failing"] = sorted(failing)
    return JsonResponse(body, status=200 if not failing else 503)


@require_GET
def phase4_health(request):
    db_error = _check_database()
    return JsonResponse(
        {
            "status": "healthy" if db_error is None else "unhealthy",
            "version": marketing_ai.__version__,
            "timestamp": timezone.now().isoformat(),
        },
        status=200 if db_error is None else 503,
    )
