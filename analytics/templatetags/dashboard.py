"""Template helpers of the dashboard: a KPI's change against the previous period."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from analytics.selectors import Change

register = template.Library()

# Less cost is good news: its arrow is coloured the other way round.
LOWER_IS_BETTER = {"cost"}


@register.simple_tag
def kpi_change(change: Change | None, metric: str = "") -> str:
    """"▲ 12.3 %" (or "▼ 1.20 pp" for rates), coloured by whether it is good news; the reason when undefined."""
    if change is None:
        return ""
    if change.value is None:
        return format_html('<span class="change none" data-change>{}</span>', change.reason)
    if abs(change.value) < 0.05:
        return format_html('<span class="change flat" data-change>± 0 {}</span>', change.unit)
    up = change.value > 0
    good = up != (metric in LOWER_IS_BETTER)
    digits = 2 if change.unit == "pp" else 1
    return format_html('<span class="change {}" data-change>{} {} {}</span>', "good" if good else "bad",
                       "▲" if up else "▼", f"{abs(change.value):,.{digits}f}", change.unit)


@register.filter
def get_item(mapping: dict, key):
    """``mapping[key]`` (None when absent): templates cannot index a dict by a variable."""
    return mapping.get(key) if mapping else None


@register.filter
def percent(ratio: float | None, digits: int = 1) -> str:
    """0.1234 -> "12.3%" (a ratio shown as a percentage; "—" when there is none)."""
    if ratio is None:
        return "—"
    return f"{ratio * 100:,.{int(digits)}f}%"
