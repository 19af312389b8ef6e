"""Engagement (open) propensity: will the customer open a notification in the window after the cut-off?"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from optimizer.ml import propensity
from optimizer.ml.conversion import FEATURES as CUSTOMER_FEATURES

LABEL = "opened_next"
FEATURES = [*CUSTOMER_FEATURES, "recency_open_days", "open_hour_concentration"]
HEURISTIC_FREQUENCY = "opens"


def fit(train: pd.DataFrame, holdout: pd.DataFrame, *, random_state: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    return propensity.fit(train, holdout, features=FEATURES, label=LABEL,
                          heuristic_frequency=HEURISTIC_FREQUENCY, random_state=random_state)


def predict(artifact: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    return propensity.predict(artifact, frame)
