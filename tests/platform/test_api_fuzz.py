"""API fuzzing in CI: schemathesis over /api/schema/, through real HTTP (live_server), as a marketer and a viewer.

Every operation of the schema gets schema-valid and schema-invalid requests (bounded examples per operation
and mode, fixed seed) with all of schemathesis' checks on; the test collects every failure and expects
none: no 5xx, and every answer (status code, content type, headers, body) as the schema says.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable

pytestmark = pytest.mark.django_db(transaction=True)

MAX_EXAMPLES = 8  # per operation and generation mode
# Every check on. A schema-valid request may still get a 400 when it breaks a rule across fields that
# OpenAPI cannot state (days together with from/to; a sample size no test can reach; neither customer_id
# nor customer_ids): positive_data_acceptance accepts 400 besides its defaults, and everything else is
# as schemathesis ships it.
ACCEPTED_FOR_VALID_DATA = ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]
SEED = 20261202


@pytest.fixture
def fuzz_world(make_user):
    """Something real behind the ids the schema's examples use, so positive cases reach the views' logic."""
    from rest_framework.authtoken.models import Token

    from tests.abtests.factories import ABTestFactory, populate
    from tests.factories import CampaignFactory, EventFactory, OfferFactory

    campaign = CampaignFactory(campaign_id="camp_1")
    OfferFactory(offer_id="off_25pct")
    EventFactory(campaign=campaign, occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    populate(ABTestFactory(campaign=campaign), users=[5, 5], conversions=[1, 2])
    tokens = {}
    for role in ("marketer", "viewer"):
        user = make_user(f"fuzz-{role}", role)
        tokens[role] = Token.objects.create(user=user).key
    return tokens


def _config():
    from schemathesis.config import SchemathesisConfig

    return SchemathesisConfig.from_dict({"checks": {
        "enabled": True, "positive_data_acceptance": {"expected-statuses": ACCEPTED_FOR_VALID_DATA}}})


def run_schemathesis(base_url: str, token: str) -> dict[str, list[str]]:
    import schemathesis

    config = _config()
    from schemathesis.generation import GenerationMode

    headers = {"Authorization": f"Token {token}"}
    schema = schemathesis.openapi.from_url(f"{base_url}/api/schema/?format=json", headers=headers, timeout=30,
                                           config=config)
    failures: dict[str, list[str]] = defaultdict(list)
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            found = _fuzz(operation, mode, base_url, headers)
            failures[f"{operation.method.upper()} {operation.path}"].extend(found)
    return {where: found for where, found in failures.items() if found}


def _fuzz(operation, mode, base_url: str, headers: dict) -> list[str]:
    """Every failure of one operation in one generation mode (hypothesis explores; nothing stops at the first)."""
    found: list[str] = []

    @seed(SEED)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=False,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:
        try:
            case.call_and_validate(base_url=base_url, headers=headers, timeout=30)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 (collected, reported at the end)
            text = str(exc).strip().splitlines()
            found.append(f"[{mode.value}] " + " | ".join(line for line in text[:12] if line.strip()))

    try:
        check()
    except Unsatisfiable:
        pass  # nothing of this mode to generate (e.g. no invalid form of a parameter-less GET)
    return found


# Known and stated, not hidden: an integer query parameter sent as an exploded object (page={"x": 1} is
# sent as ?x=1, so no `page` at all) is answered as if it were absent, because the API does not refuse
# unknown query parameters. Only this exact finding is tolerated; anything else fails the test.
TOLERATED = ("parameter `page` in query - violates `type` at /properties/page (was integer, became object)",)


def _tolerated(finding: str) -> bool:
    return "Schemathesis found 1 distinct failure" in finding and any(t in finding for t in TOLERATED)


def _report(failures: dict[str, list[str]]) -> str:
    lines = []
    for where, found in sorted(failures.items()):
        lines.append(f"{where}: {len(found)} failure(s)")
        lines.extend(f"    {f[:600]}" for f in sorted(set(found))[:3])
    return "\n".join(lines)


@pytest.mark.parametrize("role", ["marketer", "viewer"])
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(live_server, fuzz_world, role, settings):
    settings.THROTTLE_RATES = {}  # thousands of requests in a minute: the fuzzer is not a client to limit
    failures = run_schemathesis(live_server.url, fuzz_world[role])
    failures = {where: kept for where, found in failures.items() if (kept := [f for f in found if not _tolerated(f)])}
    assert not failures, "\n" + _report(failures)
