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


# Characters that could change how the page around a JSON data block parses ("</script>", "<!--",
# "]]>", an entity) or end a JavaScript line (U+2028/2029), written as JSON unicode escapes instead:
# JSON.parse reads the same data, and no user text (a variant named "<!--<script>") can break out.
_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                   0x2028: "\\u2028", 0x2029: "\\u2029"}


def script_json(data, *, cls: type[json.JSONEncoder] | None = None) -> SafeString:
    """``data`` as JSON safe to place inside ``<script type="application/json">``: the one embedding of
    data into a page (charts, and any page script's data), read back with ``JSON.parse(node.textContent)``."""
    return SafeString(json.dumps(data, cls=cls).translate(_SCRIPT_ESCAPES))


def embed(fig: go.Figure, *, div_id: str | None = None, height: int | None = None) -> SafeString:
    """A <div> plus the JSON that static/js/charts.js hands to Plotly.newPlot on page load."""
    fig.update_layout(**{k: v for k, v in LAYOUT_DEFAULTS.items() if k not in fig.layout.to_plotly_json()})
    if height:
        fig.update_layout(height=height)
    div_id = div_id or f"chart-{uuid.uuid4().hex[:8]}"
    return format_html(
        '<div class="chart" id="{}" data-chart></div><script type="application/json" data-chart-for="{}">{}</script>',
        div_id,
        div_id,
        script_json(fig.to_plotly_json(), cls=PlotlyJSONEncoder),
    )
