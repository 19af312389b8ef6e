"""Token authentication that remembers a token's user and roles for a few seconds.

DRF's ``TokenAuthentication`` reads the token and its user on every request, and ``RolePermission``
then reads the user's groups: two queries before a view does any work. On the analytics API, whose
answers come from a cache, those two queries were most of a request's cost (see docs/api.md,
"Performance"). ``CachedTokenAuthentication`` keeps the token, its user and the user's group names
in the ``auth`` cache (local memory, one per process) for ``AUTH_TOKEN_CACHE_SECONDS``.

Revocation delay. Deleting or rotating a token, deactivating a user, or changing a user's groups,
superuser flag or a group itself through the ORM clears the ``auth`` cache *of the process that made the
change* at once (signals below). Other processes (the other gunicorn workers, or every worker when the
change comes from ``manage.py create_api_token --rotate`` or the admin in another process) keep their
entry until it expires: a revoked token keeps working there for at most ``AUTH_TOKEN_CACHE_SECONDS``
(default 5 s). Changes that bypass signals (``QuerySet.update``, raw SQL) get the same bound.
``AUTH_TOKEN_CACHE_SECONDS=0`` turns the cache off (every request reads the database, as DRF does).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import caches
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from marketing_ai.api import _group_names

CACHE_ALIAS = "auth"


def _cache_seconds() -> int:
    return int(getattr(settings, "AUTH_TOKEN_CACHE_SECONDS", 5))


def _cache_key(token_key: str) -> str:
    # A digest, not the token itself: cache keys can end up in logs or a shared cache's key listing.
    return "token:" + hashlib.sha256(token_key.encode()).hexdigest()


class CachedTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``, answered from the ``auth`` cache when the key was seen recently.

    Only valid tokens of active users are cached; an unknown key is looked up (and refused) every time.
    Each request gets its own unpickled copy of the user, so nothing a view does to it leaks to the next.
    """

    def authenticate_credentials(self, key: str):
        seconds = _cache_seconds()
        if seconds <= 0:
            return super().authenticate_credentials(key)
        cache = caches[CACHE_ALIAS]
        cache_key = _cache_key(key)
        token = cache.get(cache_key)
        if token is None:
            user, token = super().authenticate_credentials(key)  # raises AuthenticationFailed when bad
            _group_names(user)  # RolePermission's roles, loaded now so they travel with the cached user
            cache.set(cache_key, token, seconds)
        return token.user, token


def forget_all_tokens(**_) -> None:
    """Drop this process's cached tokens (users, roles or tokens changed)."""
    caches[CACHE_ALIAS].clear()


def _user_saved(update_fields=None, **_) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login changes nothing a token grants (and happens on every session login)
    forget_all_tokens()


# Any change that can revoke or re-role a token clears the whole (small, per-process) cache: such
# changes are rare, and clearing everything cannot miss a case (a group renamed, a user's token rotated).
User = get_user_model()
post_save.connect(_user_saved, sender=User, dispatch_uid="auth-cache-user-save")
for _model in (Token, User, Group):
    post_delete.connect(forget_all_tokens, sender=_model, dispatch_uid=f"auth-cache-delete-{_model.__name__}")
for _model in (Token, Group):
    post_save.connect(forget_all_tokens, sender=_model, dispatch_uid=f"auth-cache-save-{_model.__name__}")


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="auth-cache-groups")
def _membership_changed(action: str, **_) -> None:
    if action.startswith("post_"):
        forget_all_tokens()


from axes.backends import AxesStandaloneBackend  # noqa: E402 (kept beside the token cache: both guard logins)


class LoginLockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout for both login forms (the dashboard's and the admin's).

    Only a login attempt over HTTP carries a request; ``authenticate()`` called without one (a
    management command checking a password) is not a login form and is not counted or refused.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
