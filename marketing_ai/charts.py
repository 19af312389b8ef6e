"""Turn a Plotly figure built in Python into an embedded chart (JS served locally, see staticfiles.py)."""

from __future__ import annotations

import json
import uuid

import plotly.graph_objects as go
from django.utils.html import format_html
from django.utils.safestring import SafeString
from plotly.utils import PlotlyJSONEncoder

LAYOUT_DEFAULTS = dict(
    # The top margin leaves the mode bar (top right, on hover) its own strip above the title.
    margin=dict(l=56, r=16, t=64, b=40),
    paper_bgcolor="rgba(0,0,0,0)",
    plot_bgcolor="rgba(0,0,0,0)",
    font=dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12),
    height=320,
    separators=".,",  # 12,345.6: thousands separated on every axis and hover
)
# The title sits left, just above the plot area, under the mode bar's strip (it covered centred titles).
TITLE_PLACEMENT = dict(x=0, xref="paper", xanchor="left", y=1, yref="paper", yanchor="bottom", pad=dict(b=10))
PARTIAL_FILL = "rgba(134,142,150,0.16)"
PARTIAL_LABELS = {"hourly": "this hour so far", "daily": "today so far", "weekly": "this week so far",
                  "monthly": "this month so far"}


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
    if fig.layout.title.text:
        subplot_titles = any(a.yref == "paper" and (a.y or 0) >= 1 for a in fig.layout.annotations)
        if subplot_titles:  # the panels' own titles sit where the title would: it goes higher, with more room
            fig.update_layout(title=dict(x=0, xref="paper", xanchor="left", y=1, yref="container", yanchor="top",
                                         pad=dict(t=34)), margin=dict(t=max(fig.layout.margin.t or 0, 96)))
        else:
            fig.update_layout(title={k: v for k, v in TITLE_PLACEMENT.items() if fig.layout.title[k] is None})
    if height:
        fig.update_layout(height=height)
    div_id = div_id or f"chart-{uuid.uuid4().hex[:8]}"
    return format_html(
        '<div class="chart" id="{}" data-chart></div><script type="application/json" data-chart-for="{}">{}</script>',
        div_id,
        div_id,
        script_json(fig.to_plotly_json(), cls=PlotlyJSONEncoder),
    )


def add_line_with_partial(fig: go.Figure, *, x: list, y: list, partial: list[bool], name: str, color: str,
                          row: int | None = None, col: int | None = None, **trace) -> None:
    """A line solid over complete periods and dashed into the partial ones (one legend entry for both)."""
    first_partial = partial.index(True) if True in partial else len(x)
    where = dict(row=row, col=col) if row else {}
    fig.add_trace(go.Scatter(x=x[:first_partial], y=y[:first_partial], name=name, legendgroup=name, mode="lines+markers",
                             line=dict(color=color), **trace), **where)
    if first_partial < len(x):
        start = max(first_partial - 1, 0)  # join the last complete point to the partial one
        fig.add_trace(go.Scatter(x=x[start:], y=y[start:], name=f"{name} (partial)", legendgroup=name, showlegend=False,
                                 mode="lines+markers", line=dict(color=color, dash="dot"),
                                 marker=dict(symbol="circle-open"), **trace), **where)


def shade_partial(fig: go.Figure, *, x0, x1, label: str) -> None:
    """Shade the period still under way (over every subplot) and label it at the top."""
    fig.add_vrect(x0=x0, x1=x1, fillcolor=PARTIAL_FILL, line_width=0, layer="below")
    fig.add_annotation(x=x0, xanchor="left", y=1, yref="paper", yanchor="top", text=label, showarrow=False,
                       font=dict(size=11, color="#495057"), name="partial-label")
