"""Shared training for the two customer-level propensity models (conversion, engagement).

One row per customer and cut-off: features describe the history before the cut-off, the label
says whether the customer did the thing (converted / opened) in the window after it. Training
rows use cut-off ``T - H`` (label window ``[T-H, T)``); holdout rows use cut-off ``T`` (label
window after ``T``): a time-based split, so the holdout is the future the model never saw.

Three candidate learners, histogram gradient boosting, logistic regression and random forest,
with fixed random states; the one with the best 3-fold cross-validated ROC AUC *on the training rows* is refit on
all training rows (the holdout is only used for the reported metrics). Features are scaled to
[0, 1] by a MinMaxScaler: in the selection it is a step of a scikit-learn ``Pipeline``, so each fold
fits it on its own fitting part (the validation part never shapes the scaling it is scored with); the
final scaler is fitted on all training rows, never on the holdout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from optimizer.ml.metrics import auc

# scikit-learn is imported inside the functions that use it: Django's start-up imports this module (the job
# registry), and loading it there cost every process ~0.6 s (tests/platform/test_startup.py).

# Rows used when comparing the learners (a random sample; the chosen one is refit on every training
# row), so choosing costs a fraction of the final fit at scale.
SELECTION_ROWS = 30_000
# A random forest on millions of rows is slow on two cores; each tree sees at most this many rows.
FOREST_MAX_SAMPLES = 100_000
# OpenMP threads for the fits. One: the worker runs two jobs at once on two cores, and
# oversubscribed OpenMP threads spin (a 0.2 s fit took 5 s on a busy machine with two threads).
THREADS = 1


def candidates(random_state: int, n_rows: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    return {
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            max_iter=120, learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=40,
            l2_regularization=1.0, early_stopping=True, validation_fraction=0.15, n_iter_no_change=10,
            random_state=random_state,
        ),
        # Needs the [0, 1] scaling; strong when data is small and the signal mostly monotone. Newton steps on
        # ~20 features converge in a handful of iterations (lbfgs needed ~70, and thousands unscaled).
        "logistic_regression": LogisticRegression(C=10.0, solver="newton-cholesky", max_iter=200),
        "random_forest": RandomForestClassifier(
            n_estimators=60, max_depth=12, min_samples_leaf=20, n_jobs=1, random_state=random_state,
            max_samples=min(1.0, FOREST_MAX_SAMPLES / max(n_rows, 1)),
        ),
    }


def recency_frequency_score(frame: pd.DataFrame, *, frequency: str, recency: str = "recency_days") -> np.ndarray:
    """The heuristic baseline: frequent and recent customers first (frequency / (1 + recency))."""
    return frame[frequency].to_numpy(float) / (1.0 + frame[recency].fillna(1e6).to_numpy(float))


def matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The model matrix in a fixed column order; missing values (no history) become 0 or a large recency."""
    out = frame.reindex(columns=features).astype(float)
    for col in features:
        if col.startswith("recency"):
            out[col] = out[col].fillna(out[col].max() if out[col].notna().any() else 0.0)
    return out.fillna(0.0).to_numpy(np.float64)


def fit(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    features: list[str],
    label: str,
    heuristic_frequency: str,
    random_state: int = 0,
    threads: int = THREADS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit on ``train``, report on ``holdout``. Returns ``(artifact, metrics)``."""
    # threadpoolctl limits only the thread pools loaded when the limit is set: scikit-learn (and its
    # OpenMP runtime) must be imported first, or the first fit in a process runs unlimited. It did:
    # on the loaded 2-core machine the first conversion fit took 38-60 s, the same fit again 1.3-2 s
    # (bench/optimizer.py, issue 15; the time was OpenMP threads spinning in gradient boosting's splits).
    load_scikit_learn()
    with threadpool_limits(threads):
        return _fit(train, holdout, features=features, label=label, heuristic_frequency=heuristic_frequency,
                    random_state=random_state)


def scaled(estimator: Any) -> Any:
    """``estimator`` behind the [0, 1] scaling, as one scikit-learn Pipeline (fitting it fits the scaler too)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler

    return Pipeline([("scaler", MinMaxScaler(clip=True)), ("estimator", estimator)])


def load_scikit_learn() -> None:
    """Import what the fits use (scikit-learn's compiled modules load the OpenMP runtime)."""
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import sklearn.preprocessing  # noqa: F401


def select(x: np.ndarray, y: np.ndarray, *, random_state: int) -> dict[str, float]:
    """Each candidate's 3-fold cross-validated ROC AUC on the unscaled rows ``x`` (0 for a fold that cannot be scored).

    Each fold fits the whole Pipeline, the scaler included, on its fitting part only.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=random_state)
    fit_rows = len(x) - len(x) // 3  # what each fold fits on (the forest's max_samples is a share of it)
    return {
        name: float(np.mean(cross_val_score(scaled(estimator), x, y, cv=folds, scoring="roc_auc", error_score=0.0)))
        for name, estimator in candidates(random_state, fit_rows).items()
    }


def _fit(train: pd.DataFrame, holdout: pd.DataFrame, *, features: list[str], label: str,
         heuristic_frequency: str, random_state: int) -> tuple[dict[str, Any], dict[str, Any]]:
    y_train = train[label].to_numpy(int)
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"training rows have a single class for {label!r}: need both outcomes to fit")
    x_train = matrix(train, features)

    # Learner selection by 3-fold cross-validated AUC on (a sample of) the training rows.
    idx = np.arange(len(x_train))
    if len(idx) > SELECTION_ROWS:
        idx = np.random.default_rng(random_state).choice(idx, SELECTION_ROWS, replace=False)
    selection = select(x_train[idx], y_train[idx], random_state=random_state)
    algorithm = max(sorted(selection), key=lambda n: selection[n])
    # The chosen learner refit on every training row; the artifact keeps the two steps as before
    # (scaler, estimator), so versions saved before the Pipeline load and predict unchanged.
    pipeline = scaled(candidates(random_state, len(x_train))[algorithm]).fit(x_train, y_train)
    scaler, estimator = pipeline.named_steps["scaler"], pipeline.named_steps["estimator"]

    metrics = evaluate(
        {"estimator": estimator, "scaler": scaler, "features": list(features)},
        holdout, label=label, heuristic_frequency=heuristic_frequency,
    )
    metrics.update(
        algorithm=algorithm,
        selection_auc={k: round(v, 4) for k, v in selection.items()},
        train_rows=int(len(train)),
        train_base_rate=float(y_train.mean()),
    )
    artifact = {"estimator": estimator, "scaler": scaler, "features": list(features), "label": label}
    return artifact, metrics


def predict(artifact: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """Probability of the positive outcome for each row of ``frame``."""
    x = artifact["scaler"].transform(matrix(frame, artifact["features"]))
    return artifact["estimator"].predict_proba(x)[:, 1]


def evaluate(artifact: dict[str, Any], holdout: pd.DataFrame, *, label: str, heuristic_frequency: str) -> dict[str, Any]:
    y = holdout[label].to_numpy(int)
    model_auc = auc(y, predict(artifact, holdout)) if len(holdout) else None
    heuristic_auc = auc(y, recency_frequency_score(holdout, frequency=heuristic_frequency)) if len(holdout) else None
    return {
        "roc_auc": model_auc,
        "heuristic_roc_auc": heuristic_auc,
        "base_rate": float(y.mean()) if len(y) else None,
        "holdout_rows": int(len(holdout)),
    }
