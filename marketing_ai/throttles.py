"""Rate limits of the API: per token (user) and per client IP, on ingestion, writes and job runs.

Each limited request belongs to one scope: ``ingest`` (``POST /api/v1/events/``), ``jobs`` (running a job),
or ``write`` (any other POST/PUT/PATCH/DELETE). Reads are not limited here, and every scope counts
apart: a sender throttled on ingestion still reads its metrics. Two limits apply to each scope: one
per authenticated user (a token belongs to one user) and one per client IP (``REMOTE_ADDR``; behind a
proxy, set ``THROTTLE_TRUST_X_FORWARDED_FOR`` so the proxy's own address is not shared by everyone).

Counters are fixed one-minute windows (``cache.add`` + ``cache.incr``: atomic on Redis, so every web
process shares one count) in the ``throttle`` cache: Redis when ``REDIS_URL`` is set (production),
local memory otherwise. Over the limit: 429 in the error shape with ``Retry-After`` (seconds to the
next window). If the cache itself fails (Redis down), the request is let through and the failure
logged: a rate limit must not take the API down with it. Rates: ``THROTTLE_RATES`` in settings
(docs/api.md, "Rate limits").

Dashboard pages' form writes (POST to a page) count in the same scopes and counters through
``marketing_ai.middleware.PageThrottleMiddleware``: a marketer clicking through forms and scripting
the API shares one budget.
"""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

CACHE_ALIAS = "throttle"
WINDOW_SECONDS = 60
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def scope_of(request, view) -> str | None:
    """The limited scope of a request, or ``None`` for reads."""
    scope = getattr(view, "throttle_scope", None)
    if scope:
        return scope if request.method not in SAFE_METHODS else None
    return "write" if request.method not in SAFE_METHODS else None


def client_ip(request) -> str:
    if getattr(settings, "THROTTLE_TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return request.META.get("REMOTE_ADDR", "")[:64]


def clock() -> float:
    """Seconds since the epoch; one name so a test can hold the window still (``frozen_throttle_clock``)."""
    return time.time()


def over_limit(scope: str, kind: str, ident: str | None) -> int | None:
    """Count one request of ``scope`` for ``ident`` (a user pk or an IP; ``kind`` says which) in this
    minute's window. ``None`` while within ``THROTTLE_RATES[f"{scope}_per_{kind}"]``, else the
    seconds to the next window (the ``Retry-After``)."""
    limit = settings.THROTTLE_RATES.get(f"{scope}_per_{kind}")
    if not limit or ident is None:
        return None
    now = clock()
    window = int(now // WINDOW_SECONDS)
    key = f"{getattr(settings, 'THROTTLE_KEY_PREFIX', '')}throttle:{scope}:{kind}:{ident}:{window}"
    try:
        cache = caches[CACHE_ALIAS]
        cache.add(key, 0, WINDOW_SECONDS + 5)
        count = cache.incr(key)
    except Exception:  # noqa: BLE001 (any cache failure: let the request through, say so in the log)
        logger.warning("rate limit cache unavailable; %s not counted", key, exc_info=True)
        return None
    if count <= limit:
        return None
    return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))


def page_write_retry_after(request, scope: str) -> int | None:
    """A dashboard form's write (``PageThrottleMiddleware``): the same scopes, rates and counters as
    the API, per user and per client IP. ``None`` when allowed, else the ``Retry-After`` seconds."""
    user = getattr(request, "user", None)
    user_ident = str(user.pk) if user is not None and user.is_authenticated else None
    waits = [over_limit(scope, "user", user_ident), over_limit(scope, "ip", client_ip(request) or None)]
    over = [w for w in waits if w is not None]
    return max(over) if over else None


def page_throttle_scope(scope: str):
    """Decorator: a dashboard view's writes count in ``scope`` (e.g. ``"jobs"`` for a button that runs
    a job) instead of ``"write"``. ``PageThrottleMiddleware`` reads it."""

    def mark(view):
        view.throttle_scope = scope
        return view

    return mark


class _WindowThrottle(BaseThrottle):
    kind = ""  # "user" or "ip"

    def ident(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        self.retry_after = None
        scope = scope_of(request, view)
        if scope is None:
            return True
        self.retry_after = over_limit(scope, self.kind, self.ident(request))
        return self.retry_after is None

    def wait(self) -> float | None:
        return self.retry_after


class UserRateThrottle(_WindowThrottle):
    """Per authenticated user (so per token); anonymous requests never get past authentication."""

    kind = "user"

    def ident(self, request) -> str | None:
        user = getattr(request, "user", None)
        return str(user.pk) if user is not None and user.is_authenticated else None


class IPRateThrottle(_WindowThrottle):
    """Per client IP: a client holding many tokens still shares one budget."""

    kind = "ip"

    def ident(self, request) -> str | None:
        return client_ip(request) or None
