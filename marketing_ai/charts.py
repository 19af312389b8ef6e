"""Turn a Plotly figure built in Python into an embedded chart (JS served locally, see staticfiles.py)."""

from __future__ import annotations

import json
import uuid

import plotly.graph_objects as go
from django.utils.html import format_html
from django.utils.safestring import SafeString
from plotly.utils import PlotlyJSONEncoder

LAYOUT_DEFAULTS = dict(
    margin=dict(l=48, r=16, t=40, b=40),
    paper_bgcolor="rgba(0,0,0,0)",
    plot_bgcolor="rgba(0,0,0,0)",
    font=dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12),
    height=320,
)


def embed(fig: go.Figure, *, div_id: str | None = None, height: int | None = None) -> SafeString:
    """A <div> plus the JSON that static/js/charts.js hands to Plotly.newPlot on page load."""
    fig.update_layout(**{k: v for k, v in LAYOUT_DEFAULTS.items() if k not in fig.layout.to_plotly_json()})
    if height:
        fig.update_layout(height=height)
    div_id = div_id or f"chart-{uuid.uuid4().hex[:8]}"
    payload = json.dumps(fig.to_plotly_json(), cls=PlotlyJSONEncoder)
    return format_html(
        '<div class="chart" id="{}" data-chart></div><script type="application/json" data-chart-for="{}">{}</script>',
        div_id,
        div_id,
        SafeString(payload.replace("</", "<\\/")),
    )
