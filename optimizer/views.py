"""The optimisation page: proposals with one-click apply, open heatmap, offer response, merchants, models."""

from __future__ import annotations

from collections import OrderedDict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from marketing_ai.api import is_marketer
from marketing_ai.errors import DomainError
from optimizer import charts, selectors
from optimizer.models import CampaignOptimization
from optimizer.services import recommendations as services

Opt = CampaignOptimization
TYPE_TITLES = OrderedDict(
    [(Opt.Type.OFFER, "Offers"), (Opt.Type.TIMING, "Send timing"), (Opt.Type.SEGMENT, "Segment targeting"), (Opt.Type.MERCHANT, "Merchant cross-promotion")]
)
SHOWN_STATUSES = (Opt.Status.PROPOSED, Opt.Status.APPLIED, Opt.Status.DISMISSED)
PAGE_SIZE = 20  # proposals per type and page
CHART_CACHE_SECONDS = 3600


def _cached_chart(key: str, draw) -> str:
    """A chart's HTML, drawn once per process and data version (building a Plotly figure costs ~0.1 s)."""
    return cache.get_or_set(f"optimizer:chart:{key}", draw, CHART_CACHE_SECONDS)


@login_required
def optimize_page(request):
    filters = selectors.ProposalFilters.from_query(request.GET, statuses=SHOWN_STATUSES)
    counts = selectors.proposal_counts(filters)
    groups = []
    for kind, title in TYPE_TITLES.items():
        if filters.kind and kind != filters.kind:
            continue
        paginator = Paginator(selectors.proposal_rows(filters, kind), PAGE_SIZE)
        paginator.count = counts.get(kind, 0)  # counted for all types at once (one grouped query, not one per type)
        page = paginator.get_page(request.GET.get(f"page_{kind}"))
        groups.append({"kind": kind, "title": title, "page": page, "total": counts.get(kind, 0)})
    customer_id = (request.GET.get("customer_id") or "").strip()[:64]
    customer, merchants = selectors.top_merchants(customer_id)
    models = list(selectors.model_versions())
    heatmap = selectors.open_heatmap()
    model_key = ",".join(f"{m.pk}:{m.accuracy}:{m.is_active}" for m in models)
    return render(
        request,
        "optimizer/page.html",
        {
            "groups": groups,
            "filters": filters,
            "status": filters.status,
            "statuses": [*SHOWN_STATUSES, "all"],
            "types": list(TYPE_TITLES.items()),
            "campaign_choices": selectors.proposal_campaigns(),
            "query_without_page": filters.query_string(customer_id=customer_id),
            "can_apply": is_marketer(request.user),
            "heatmap_computed_at": heatmap.computed_at,
            "heatmap": _cached_chart(f"heatmap:{heatmap.computed_at.timestamp() if heatmap.computed_at else 0}:{heatmap.recommended_hour}", lambda: charts.open_heatmap(heatmap))
            if heatmap.computed_at else charts.open_heatmap(heatmap),
            "offer_chart": _offer_chart(),
            "customer_id": customer_id,
            "customer": customer,
            "merchants": merchants,
            "models": models,
            "model_chart": _cached_chart(f"models:{hash(model_key)}", lambda: charts.model_metrics(models)),
        },
    )


def _offer_chart() -> str:
    snapshot = selectors.page_snapshot(selectors.OFFER_OUTCOMES_SNAPSHOT)
    if snapshot is None:
        return charts.offer_response(selectors.offer_curves())
    return _cached_chart(f"offers:{snapshot.computed_at.timestamp()}", lambda: charts.offer_response(selectors.offer_curves()))


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
    except DomainError as exc:  # Conflict: superseded or dismissed meanwhile
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{opt.campaign.name}: {opt.get_recommendation_type_display().lower()} "
                                  f"{opt.current_value or 'none'} → {opt.recommended_value} ({opt.get_status_display().lower()}).")
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/optimize/") else "optimize-page")  # never off-site
