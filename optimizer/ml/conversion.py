"""Conversion propensity: will the customer convert in the window after the cut-off?"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from optimizer.ml import propensity

LABEL = "converted_next"
# Column names produced by optimizer.features.customer_frame (documented there).
FEATURES = [
    "recency_days", "recency_conversion_days", "tenure_days",
    "sent", "opens", "views", "clicks", "conversions", "revenue", "avg_order_value",
    "open_rate", "click_rate", "conversion_rate", "active_span_days", "open_recency_score", "conversion_recency_score",
    "segment_new_users", "segment_returning_users", "segment_high_value_users",
]
HEURISTIC_FREQUENCY = "conversions"


def fit(train: pd.DataFrame, holdout: pd.DataFrame, *, random_state: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    return propensity.fit(train, holdout, features=FEATURES, label=LABEL,
                          heuristic_frequency=HEURISTIC_FREQUENCY, random_state=random_state)


def predict(artifact: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    return propensity.predict(artifact, frame)
