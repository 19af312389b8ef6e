"""The A/B testing page (/ab-tests/) and one test's page: thin over services and selectors.

Writes (create, start, analyze, end) are POST forms with CSRF, for marketers only; the service does
all validation, so the form shows the same field errors as the API's 400.
"""

from __future__ import annotations

import datetime as dt
import math

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException, ValidationError

from abtests import charts, metrics, selectors, services
from abtests.models import ABTest
from campaigns.models import Campaign, Offer
from marketing_ai.api import is_marketer

VARIANT_ROWS = 4
CONFIDENCE_CHOICES = (0.80, 0.90, 0.95, 0.99)


def _number(raw: str | None, kind=float):
    try:
        value = kind((raw or "").strip())
    except ValueError:
        return math.nan if kind is float else None
    return value


def _form_values(post) -> dict:
    variants = []
    for i in range(VARIANT_ROWS):
        name = (post.get(f"variant_name_{i}") or "").strip()
        if not name:
            continue
        send_time = None
        raw_time = (post.get(f"variant_send_time_{i}") or "").strip()
        if raw_time:
            try:
                send_time = dt.time.fromisoformat(raw_time)
            except ValueError:
                send_time = None
        variants.append(services.VariantSpec(name=name, weight=_number(post.get(f"variant_weight_{i}")),
                                             offer_id=(post.get(f"variant_offer_{i}") or None), send_time=send_time))
    return dict(
        campaign_id=(post.get("campaign_id") or "").strip(),
        test_name=post.get("test_name") or "",
        hypothesis=post.get("hypothesis") or "",
        variants=variants,
        sample_size_target=_number(post.get("sample_size_target"), int),
        confidence_level=_number(post.get("confidence_level")),
        primary_metric=post.get("primary_metric") or ABTest.Metric.CONVERSION_RATE,
        guardrail_metrics=post.getlist("guardrail_metrics"),
        secondary_metrics=post.getlist("secondary_metrics"),
        multiple_testing=post.get("multiple_testing") or ABTest.Correction.HOLM,
        sequential=post.get("sequential") == "on",
    )


def _blank_form() -> dict:
    return {"variant_name_0": "A", "variant_weight_0": "0.5", "variant_name_1": "B", "variant_weight_1": "0.5",
            "confidence_level": "0.95", "primary_metric": ABTest.Metric.CONVERSION_RATE}


def _active_cards(tests) -> list[dict]:
    cards = []
    for test in tests:
        status = selectors.test_status(test=test)
        cards.append({
            "test": test,
            "status": status,
            "chart": charts.variant_rates(status, div_id=f"rates-{test.test_id}") if status["users_assigned"] else "",
            "progress_width": round(100 * (status["progress"] or 0), 1),
        })
    return cards


@login_required
def ab_tests_page(request: HttpRequest) -> HttpResponse:
    form_values = _blank_form()
    errors: dict = {}
    status_code = 200
    if request.method == "POST":
        if not is_marketer(request.user):
            raise PermissionDenied("Creating a test needs the marketer role.")
        form_values = request.POST.dict()
        try:
            test = services.test_create(**_form_values(request.POST), user=request.user)
        except ValidationError as exc:
            errors = {k: [str(r) for r in v] if isinstance(v, list) else [str(v)] for k, v in exc.detail.items()}
            status_code = 400
        else:
            messages.success(request, f"Created {test.test_name} ({test.test_id}) as a draft; start it when ready.")
            return redirect("abtests-page")
    active = selectors.test_list().exclude(status=ABTest.Status.COMPLETED).order_by("status", "-created_at")
    history = []
    for test in selectors.test_history()[:50]:
        history.append({"test": test, "result": selectors.latest_result(test=test)})
    context = {
        "cards": _active_cards(active),
        "history": history,
        "can_write": is_marketer(request.user),
        "campaigns": Campaign.objects.order_by("name").values("campaign_id", "name"),
        "offers": Offer.objects.all(),
        "form": form_values,
        "errors": errors,
        "variant_rows": [
            {"i": i, **{key: form_values.get(f"variant_{key}_{i}", "") for key in ("name", "weight", "offer", "send_time")}}
            for i in range(VARIANT_ROWS)
        ],
        "confidence_choices": CONFIDENCE_CHOICES,
        "metrics": ABTest.Metric.choices,
        "all_metrics": [(m.name, m.label) for m in metrics.METRICS.values()],
        "corrections": ABTest.Correction.choices,
    }
    return render(request, "abtests/index.html", context, status=status_code)


@login_required
def ab_test_detail_page(request: HttpRequest, test_id: str) -> HttpResponse:
    test = selectors.test_get(test_id=test_id)
    card = _active_cards([test])[0]
    over_time = selectors.results_over_time(test=test)
    has_users = any(sum(d["users"]) for d in over_time["days"])
    channel_breakdown = selectors.breakdown(test=test, by="channel") if has_users else None
    return render(request, "abtests/detail.html", {
        "card": card, "test": test, "results": _distinct_results(selectors.results_of(test=test)[:50]),
        "can_write": is_marketer(request.user),
        "over_time": over_time,
        "breakdown": selectors.breakdown(test=test, by="segment") if has_users else None,
        "channel_breakdown": channel_breakdown,
        "channels_seen": bool(channel_breakdown) and any(r["slice"] != selectors.NO_CHANNEL
                                                         for r in channel_breakdown["slices"]),
        "lift_chart": charts.lift_over_time(over_time, div_id="lift-over-time") if has_users else "",
        "users_chart": charts.users_over_time(over_time, div_id="users-over-time") if has_users else "",
        "metric_charts": [charts.metric_lift_over_time(over_time, m, div_id=f"lift-over-time-{m['metric']}")
                          for m in over_time["metrics"]] if has_users else [],
    })


def _distinct_results(results) -> list[dict]:
    """Newest first; an analysis of the same counts as the one before it (Analyze, then End with no new
    users) is one row, counted."""
    rows: list[dict] = []
    for result in results:
        figures = (result.fingerprint or f"id:{result.pk}", result.decision, result.winner)
        if rows and rows[-1]["figures"] == figures:
            rows[-1]["times"] += 1
            continue
        rows.append({"result": result, "figures": figures, "times": 1})
    return rows


@login_required
@require_POST
def ab_test_transition(request: HttpRequest, test_id: str, verb: str) -> HttpResponse:
    if not is_marketer(request.user):
        raise PermissionDenied("Changing a test needs the marketer role.")
    test = selectors.test_get(test_id=test_id)
    try:
        if verb == "start":
            services.test_start(test=test)
            messages.success(request, f"Started {test.test_name}: assign customers through the API.")
        elif verb == "analyze":
            result = services.test_analyze(test=test)
            messages.success(request, f"Analysed {test.test_name}: {result.recommended_action}")
        elif verb == "end":
            campaign = test.campaign
            before = {"current_offer": campaign.current_offer.offer_id if campaign.current_offer_id else "none",
                      "send_time": campaign.send_time.strftime("%H:%M") if campaign.send_time else "none"}
            ended = services.test_end(test=test, apply_winner=request.POST.get("apply_winner") == "on", user=request.user)
            winner = f"{ended.test.winner} won" if ended.test.winner else "no winner"
            applied = "; ".join(f"{field.replace('_', ' ')} {before.get(field, '?')} → {value}"
                                for field, value in ended.applied.items())
            messages.success(request, f"Ended {test.test_name}: {winner}"
                                      + (f". Applied to {campaign.name}: {applied}." if applied else "."))
        else:
            messages.error(request, f"Unknown action {verb!r}.")
    except APIException as exc:
        messages.error(request, str(exc.detail))
    target = request.POST.get("next") or reverse("abtests-page")
    return redirect(target if target.startswith("/ab-tests/") else reverse("abtests-page"))
