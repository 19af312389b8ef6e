"""Role x endpoint x method: every API endpoint and dashboard page, for each kind of account.

Accounts: anonymous, viewer (reads), marketer (reads and writes), ingest (a service account that may
only send events, even with a password that logs in), superuser. The rule (``marketing_ai.api.role_refusal``):

- anonymous: the API answers 401, pages send to the login form (302);
- ingest: only ``POST /api/v1/events/`` (and the schema and its docs, which any login may read); 403 elsewhere;
- viewer: every read; 403 on every write;
- marketer and superuser: everything.

"Allowed" means the authorization let the request through: any answer but 401/403 (an unknown id is then a
404, an empty body a 400), and never a 5xx.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "viewer", "marketer", "ingest", "superuser")
PUBLIC = ("/api/phase4/health", "/favicon.ico")  # the icon redirects to a static file, like /static/
DOCS = ("/api/schema/", "/api/docs/", "/api/redoc/")  # any logged-in account may read the API's description
PAGE_EXEMPT = ("/admin/", "/accounts/", "/static/", "/healthz", "/readyz")
READS = ("get", "head", "options")
# Reads sent as POST because their input is a list (bounded batch look-ups): any reading role may call them.
READ_POSTS = ("/api/v1/optimize/send-time-lookup",)


def _sample(regex: str) -> str:
    regex = regex.lstrip("^").rstrip("$").replace("\\Z", "")
    regex = re.sub(r"\\\.\(\?P<format>[^)]*\)/?\??", "", regex)
    regex = re.sub(r"\(\?P<\w+>[^)]*\)", "1", regex)
    regex = re.sub(r"<(?:\w+:)?\w+>", "1", regex)
    return regex.replace("/?", "/").replace("\\", "")


def endpoints() -> list[tuple[str, str, str]]:
    """(kind, path, method) for every URL pattern reachable at its sample path."""
    found: list[tuple[str, object]] = []

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            part = _sample(str(p.pattern))
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + part)
            elif isinstance(p, URLPattern):
                found.append((prefix + part, p.callback))

    walk(get_resolver().url_patterns, "/")
    rows = set()
    for path, callback in found:
        if "(" in path or "[" in path or path.startswith(PUBLIC) or path.startswith(PAGE_EXEMPT):
            continue
        try:
            if resolve(path).func is not callback:
                continue
        except Exception:  # noqa: BLE001 (a sample that does not resolve is not an endpoint)
            continue
        if path.startswith("/api/"):
            actions = getattr(callback, "actions", None)
            cls = getattr(callback, "cls", None)
            if actions:
                methods = set(actions)
            elif cls is not None:
                methods = {m for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)}
            else:
                methods = {"get"}
            rows.update(("api", path, m) for m in methods)
        else:
            rows.update(("page", path, m) for m in ("get", "post"))
    return sorted(rows)


def allowed(role: str, kind: str, path: str, method: str) -> bool:
    if role == "anonymous":
        return False
    if role in ("marketer", "superuser"):
        return True
    if kind == "api" and path.startswith(DOCS) and method in READS:
        return True
    if role == "ingest":
        return kind == "api" and path.startswith("/api/v1/events") and method == "post"
    return method in READS or (kind == "api" and path.startswith(READ_POSTS))  # viewer


@pytest.fixture
def clients(make_user):
    users = {
        "viewer": make_user("m_viewer", "viewer"),
        "marketer": make_user("m_marketer", "marketer"),
        "ingest": make_user("m_ingest", "ingest"),
        "superuser": make_user("m_root", is_superuser=True, is_staff=True),
    }
    made = {"anonymous": (APIClient(), Client())}
    for role, user in users.items():
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        page = Client()
        page.force_login(user)
        made[role] = (api, page)
    return made


def test_the_matrix_covers_the_api_and_the_pages():
    rows = endpoints()
    kinds = {kind for kind, _, _ in rows}
    assert kinds == {"api", "page"}
    assert ("api", "/api/v1/events/", "post") in rows and ("api", "/api/v1/jobs/1/run/", "post") in rows
    assert ("page", "/analytics/", "get") in rows and ("page", "/ab-tests/1/", "get") in rows
    assert len(rows) > 80


@override_settings(THROTTLE_RATES={})  # hundreds of writes in a few seconds: not what this test is about
@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_what_it_may(clients, role):
    api, page = clients[role]
    wrong = []
    for kind, path, method in endpoints():
        client = api if kind == "api" else page
        response = getattr(client, method)(path, {}, format="json") if kind == "api" and method != "get" \
            else getattr(client, method)(path)
        status = response.status_code
        if status >= 500:
            wrong.append(f"{method.upper()} {path}: {status}")
            continue
        if allowed(role, kind, path, method):
            ok = status not in (401, 403) and not (kind == "page" and status == 302 and "/accounts/login/" in
                                                  response.get("Location", ""))
        elif role == "anonymous":
            ok = status == 401 if kind == "api" else (status == 302 and "/accounts/login/" in response["Location"])
        else:
            ok = status == 403
        if not ok:
            wrong.append(f"{method.upper()} {path}: {status} (allowed={allowed(role, kind, path, method)})")
    assert wrong == [], f"{role}:\n" + "\n".join(wrong)
