"""The A/B testing page (/ab-tests/) and one test's page: thin over services and selectors.

Writes (create, start, analyze, end) are POST forms with CSRF, for marketers only. The create form
(``abtests.forms.ABTestCreateForm``) applies the API's serializer and the same service, so the page shows
the same field errors as the API's 400.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from abtests import charts, metrics, selectors, services
from abtests.forms import ABTestCreateForm
from abtests.models import ABTest
from campaigns.models import Campaign, Offer
from marketing_ai.api import is_marketer
from marketing_ai.errors import DomainError, InvalidInput

CONFIDENCE_CHOICES = (0.80, 0.90, 0.95, 0.99)


def _active_cards(tests) -> list[dict]:
    cards = []
    for test in tests:
        status = selectors.abtest_status(test=test)
        cards.append({
            "test": test,
            "status": status,
            "chart": charts.variant_rates(status, div_id=f"rates-{test.test_id}") if status["users_assigned"] else "",
            "progress_width": round(100 * (status["progress"] or 0), 1),
        })
    return cards


@login_required
def ab_tests_page(request: HttpRequest) -> HttpResponse:
    form = ABTestCreateForm(request.POST if request.method == "POST" else None)
    status_code = 200
    if request.method == "POST":
        if not is_marketer(request.user):
            raise PermissionDenied("Creating a test needs the marketer role.")
        if form.is_valid():
            try:
                test = services.abtest_create(**form.create_kwargs, user=request.user)
            except InvalidInput as exc:
                form.add_service_errors(exc.fields)
            else:
                messages.success(request, f"Created {test.test_name} ({test.test_id}) as a draft; start it when ready.")
                return redirect("abtests-page")
        status_code = 400
    active = selectors.abtest_list().exclude(status=ABTest.Status.COMPLETED).order_by("status", "-created_at")
    history = []
    completed = list(selectors.abtest_history()[:50])
    latest = selectors.latest_results(completed)
    for test in completed:
        history.append({"test": test, "result": latest.get(test.pk)})
    context = {
        "cards": _active_cards(active),
        "history": history,
        "can_write": is_marketer(request.user),
        "campaigns": Campaign.objects.order_by("name").values("campaign_id", "name"),
        "offers": Offer.objects.all(),
        "form": form.values(),
        "errors": form.field_errors() if form.is_bound else {},
        "other_errors": form.other_errors() if form.is_bound else [],
        "variant_rows": form.variant_rows(),
        "confidence_choices": CONFIDENCE_CHOICES,
        "metrics": ABTest.Metric.choices,
        "all_metrics": [(m.name, m.label) for m in metrics.METRICS.values()],
        "corrections": ABTest.Correction.choices,
    }
    return render(request, "abtests/index.html", context, status=status_code)


@login_required
def ab_test_detail_page(request: HttpRequest, test_id: str) -> HttpResponse:
    test = selectors.abtest_get(test_id=test_id)
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
    test = selectors.abtest_get(test_id=test_id)
    try:
        if verb == "start":
            services.abtest_start(test=test)
            messages.success(request, f"Started {test.test_name}: assign customers through the API.")
        elif verb == "analyze":
            result = services.abtest_analyze(test=test)
            messages.success(request, f"Analysed {test.test_name}: {result.recommended_action}")
        elif verb == "end":
            campaign = test.campaign
            before = {"current_offer": campaign.current_offer.offer_id if campaign.current_offer_id else "none",
                      "send_time": campaign.send_time.strftime("%H:%M") if campaign.send_time else "none"}
            ended = services.abtest_end(test=test, apply_winner=request.POST.get("apply_winner") == "on", user=request.user)
            winner = f"{ended.test.winner} won" if ended.test.winner else "no winner"
            applied = "; ".join(f"{field.replace('_', ' ')} {before.get(field, '?')} → {value}"
                                for field, value in ended.applied.items())
            messages.success(request, f"Ended {test.test_name}: {winner}"
                                      + (f". Applied to {campaign.name}: {applied}." if applied else "."))
        else:
            messages.error(request, f"Unknown action {verb!r}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    target = request.POST.get("next") or reverse("abtests-page")
    return redirect(target if target.startswith("/ab-tests/") else reverse("abtests-page"))
