"""The optimisation page: proposals with one-click apply, open heatmap, offer response, merchants, models."""

from __future__ import annotations

from collections import OrderedDict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException

from marketing_ai.api import is_marketer
from optimizer import charts, selectors
from optimizer.models import CampaignOptimization
from optimizer.services import recommendations as services

Opt = CampaignOptimization
TYPE_TITLES = OrderedDict(
    [(Opt.Type.OFFER, "Offers"), (Opt.Type.TIMING, "Send timing"), (Opt.Type.SEGMENT, "Segment targeting"), (Opt.Type.MERCHANT, "Merchant cross-promotion")]
)
SHOWN_STATUSES = (Opt.Status.PROPOSED, Opt.Status.APPLIED, Opt.Status.DISMISSED)


@login_required
def optimize_page(request):
    status = request.GET.get("status", Opt.Status.PROPOSED)
    if status not in (*SHOWN_STATUSES, "all"):
        status = Opt.Status.PROPOSED
    rows = selectors.optimization_list(status=None if status == "all" else status)
    if status == "all":
        rows = rows.exclude(status=Opt.Status.SUPERSEDED)
    grouped = [(kind, title, [r for r in rows if r.recommendation_type == kind]) for kind, title in TYPE_TITLES.items()]
    customer_id = (request.GET.get("customer_id") or "").strip()
    customer, merchants = selectors.top_merchants(customer_id)
    models = list(selectors.model_versions())
    return render(
        request,
        "optimizer/page.html",
        {
            "grouped": grouped,
            "status": status,
            "statuses": [*SHOWN_STATUSES, "all"],
            "can_apply": is_marketer(request.user),
            "heatmap": charts.open_heatmap(selectors.open_heatmap()),
            "offer_chart": charts.offer_response(selectors.offer_curves()),
            "customer_id": customer_id,
            "customer": customer,
            "merchants": merchants,
            "models": models,
            "model_chart": charts.model_metrics(models),
        },
    )


@login_required
@require_POST
def optimization_action(request, pk: int, verb: str):
    """The page's Apply / Dismiss buttons: the same services as the API and the admin."""
    if not is_marketer(request.user):
        raise PermissionDenied("Applying or dismissing needs the marketer role.")
    opt = get_object_or_404(Opt, pk=pk)
    action = {"apply": services.apply_optimization, "dismiss": services.dismiss_optimization}.get(verb)
    if action is None:
        raise PermissionDenied(f"unknown action {verb!r}")
    try:
        opt = action(opt, request.user)
    except APIException as exc:  # Conflict: superseded or dismissed meanwhile
        messages.error(request, str(exc.detail))
    else:
        messages.success(request, f"{opt.campaign.name}: {opt.get_recommendation_type_display().lower()} "
                                  f"{opt.current_value or 'none'} → {opt.recommended_value} ({opt.get_status_display().lower()}).")
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/optimize/") else "optimize-page")  # never off-site
