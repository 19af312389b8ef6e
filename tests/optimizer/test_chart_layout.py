"""The optimisation page's charts say what they show: one panel per model metric, the heatmap's outline explained."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np

from optimizer import charts
from optimizer.selectors import Heatmap


def _figure(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json"[^>]*>(.*)</script>', html, re.S).group(1))


def _version(model_type, version, metric, value, active=False):
    return SimpleNamespace(model_type=model_type, version=version, primary_metric=metric, accuracy=value, is_active=active)


def test_model_registry_chart_puts_each_metric_on_its_own_axis():
    models = [_version("conversion", 1, "roc_auc", 0.71), _version("conversion", 2, "roc_auc", 0.74, True),
              _version("offer_response", 1, "log_loss", 0.31, True), _version("send_time", 1, "mae_hours", 2.4, True)]
    fig = _figure(charts.model_metrics(models))
    assert [t["yaxis"] for t in fig["data"]] == ["y", "y2", "y3"]  # three panels, three y axes
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert titles == ["conversion: roc_auc", "offer_response: log_loss", "send_time: mae_hours"]
    assert fig["layout"]["yaxis2"]["title"]["text"] == "log_loss"


def test_heatmap_explains_the_outlined_hour_and_says_when_there_are_no_opens():
    counts = np.zeros((7, 24), dtype=int)
    counts[2, 19] = 5
    html = charts.open_heatmap(Heatmap(counts, 19, 5))
    assert "recommended 19:00" in " ".join(a["text"] for a in _figure(html)["layout"]["annotations"])
    assert "Outlined: 19:00 local, the most common personal best send hour" in html.split("</script>")[-1]
    assert "No opens yet." in charts.open_heatmap(Heatmap(np.zeros((7, 24), dtype=int), 9, 0))
