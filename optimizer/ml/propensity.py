"""Shared training for the two customer-level propensity models (conversion, engagement).

One row per customer and cut-off: features describe the history before the cut-off, the label
says whether the customer did the thing (converted / opened) in the window after it. Training
rows use cut-off ``T - H`` (label window ``[T-H, T)``); holdout rows use cut-off ``T`` (label
window after ``T``): a time-based split, so the holdout is the future the model never saw.

Three candidate learners, histogram gradient boosting, logistic regression and random forest,
with fixed random states, chosen on the *training* rows only (the holdout is only used for the
reported metrics) and refit on all of them. Up to ``CROSS_VALIDATION_ROWS`` rows the best 3-fold
cross-validated ROC AUC wins; above, a race (``race``): stratified rounds of growing samples, each
fitting the learners still in on two thirds and scoring them on the rest, a learner more than
``DROP_Z`` paired (DeLong) standard errors behind the leader leaving; of those within ``WITHIN_SE``
of the last round's leader the simplest wins (the one-standard-error rule). Why:
docs/optimizer-models.md, "Learner selection". Features are scaled to [0, 1] by a MinMaxScaler: in
the selection it is a step of a scikit-learn ``Pipeline``, so each fold or round fits it on its own
fitting part (the rows scored never shape the scaling they are scored with); the final scaler is
fitted on all training rows, never on the holdout.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from optimizer.ml.metrics import auc

# scikit-learn is imported inside the functions that use it: Django's start-up imports this module (the job
# registry), and loading it there cost every process ~0.6 s (tests/platform/test_startup.py).

# Learner selection (``race``). Up to CROSS_VALIDATION_ROWS training rows: 3-fold cross-validation on all
# of them, as before (small data: every row scored, and cheap). Above: rounds on stratified samples of
# RACE_ROWS rows, dropping a learner DROP_Z standard errors behind; the chosen one is refit on every
# training row. Why these sizes: docs/optimizer-models.md ("Learner selection").
CROSS_VALIDATION_ROWS = 6_000
RACE_ROWS = (6_000, 20_000)
SELECTION_ROWS = RACE_ROWS[-1]  # the most rows a selection looks at
DROP_Z = 3.0
# The race's winner: the first of these within WITHIN_SE paired standard errors of the last round's leader.
SIMPLEST_FIRST = ("logistic_regression", "hist_gradient_boosting", "random_forest")
WITHIN_SE = 1.0
# Fewer rows than this of either outcome: no race (a third of a round's sample could miss a class).
MIN_CLASS_ROWS = 30
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


def cross_validated(x: np.ndarray, y: np.ndarray, *, random_state: int) -> dict[str, float]:
    """Each candidate's 3-fold cross-validated ROC AUC (0 for a fold that cannot be scored).

    Each fold fits the whole Pipeline, the scaler included, on its fitting part only.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=random_state)
    fit_rows = len(x) - len(x) // 3  # what each fold fits on (the forest's max_samples is a share of it)
    return {
        name: float(np.mean(cross_val_score(scaled(estimator), x, y, cv=folds, scoring="roc_auc", error_score=0.0)))
        for name, estimator in candidates(random_state, fit_rows).items()
    }


class Selection(NamedTuple):
    winner: str
    auc: dict[str, float]  # each learner's AUC in the last round it ran in
    rounds: list[dict[str, Any]]  # what each round saw and decided (kept in the metrics)


def race(x: np.ndarray, y: np.ndarray, *, random_state: int) -> Selection:
    """Learner selection by racing on the unscaled rows ``x``.

    Up to ``CROSS_VALIDATION_ROWS`` rows: 3-fold cross-validation on all of them (one round), as before.
    Above: rounds on stratified samples of ``RACE_ROWS`` rows (the last capped by the rows there are).
    Each round fits the learners still in the race on two thirds of its sample and scores them on the
    other third (a stratified split); a learner whose AUC is behind the round's leader by more than
    ``DROP_Z`` standard errors of the paired difference (DeLong) leaves the race. The race stops when
    one learner is left or after the last round. Winner: of the last round's learners within ``WITHIN_SE``
    paired standard errors of its leader, the first in ``SIMPLEST_FIRST`` (the one-standard-error rule).
    """
    from sklearn.model_selection import train_test_split

    from optimizer.ml.metrics import paired_auc_difference

    if len(x) <= CROSS_VALIDATION_ROWS or min(np.bincount(y, minlength=2)) < MIN_CLASS_ROWS:
        # Small data, or too few of one outcome to split by strata: cross-validate (on a sample, as before).
        if len(x) > SELECTION_ROWS:
            keep = np.random.default_rng(random_state).choice(len(x), SELECTION_ROWS, replace=False)
            x, y = x[keep], y[keep]
        cv = cross_validated(x, y, random_state=random_state)
        return Selection(max(sorted(cv), key=lambda n: cv[n]), cv,
                         [{"rows": int(len(x)), "method": "3-fold cross-validation", "auc": {k: round(v, 4) for k, v in cv.items()}}])
    scores: dict[str, float] = {}
    rounds: list[dict[str, Any]] = []
    alive = list(candidates(random_state, 1))
    winner = alive[0]  # replaced in the first round (one always runs: both classes have MIN_CLASS_ROWS rows)
    sizes = [n for n in RACE_ROWS if n < len(x)] + [min(len(x), RACE_ROWS[-1])]
    for round_no, size in enumerate(dict.fromkeys(sizes)):  # sizes ascending, no repeat
        if len(alive) < 2:
            break
        rs = random_state + round_no  # a fresh sample each round: each drop rests on new rows
        rows = np.arange(len(x))
        if size < len(x):
            rows = train_test_split(rows, train_size=size, stratify=y, random_state=rs)[0]
        fit_rows, val_rows = train_test_split(rows, test_size=1 / 3, stratify=y[rows], random_state=rs)
        y_val = y[val_rows]
        predicted: dict[str, np.ndarray] = {}
        for name, estimator in candidates(random_state, len(fit_rows)).items():
            if name not in alive:
                continue
            try:
                pipeline = scaled(estimator).fit(x[fit_rows], y[fit_rows])
                predicted[name] = pipeline.predict_proba(x[val_rows])[:, 1]
            except ValueError:  # as cross_val_score's error_score=0: a learner that cannot fit here is out
                scores[name] = 0.0
        if len(np.unique(y_val)) < 2 or not predicted:
            break  # nothing to score on: the previous round's leader stands
        round_auc = {name: auc_value(y_val, p) for name, p in predicted.items()}
        scores.update(round_auc)
        leader = max(sorted(round_auc), key=lambda n: round_auc[n])
        gaps: dict[str, tuple[float, float]] = {leader: (0.0, 0.0)}
        for name in round_auc:
            if name != leader:
                gaps[name] = paired_auc_difference(y_val, predicted[leader], predicted[name])
        alive = [n for n in round_auc if gaps[n][0] <= DROP_Z * gaps[n][1]]
        # The one-standard-error rule: of the learners within one paired SE of the leader (the data cannot
        # tell them apart), the simplest, cheapest to fit and to score wins.
        winner = next(n for n in SIMPLEST_FIRST if n in round_auc and gaps[n][0] <= WITHIN_SE * gaps[n][1])
        rounds.append({"rows": int(len(rows)), "method": "stratified 2/3 fit, 1/3 scored",
                       "auc": {k: round(v, 4) for k, v in round_auc.items()},
                       "gap_to_leader_and_se": {n: [round(d, 4), round(e, 4)] for n, (d, e) in gaps.items() if n != leader},
                       "kept": sorted(alive), "leader": leader, "winner": winner})
    return Selection(winner, scores, rounds)


def auc_value(y: np.ndarray, score: np.ndarray) -> float:
    value = auc(y, score)
    return 0.0 if value is None else value


def _fit(train: pd.DataFrame, holdout: pd.DataFrame, *, features: list[str], label: str,
         heuristic_frequency: str, random_state: int) -> tuple[dict[str, Any], dict[str, Any]]:
    y_train = train[label].to_numpy(int)
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"training rows have a single class for {label!r}: need both outcomes to fit")
    x_train = matrix(train, features)

    # Learner selection by racing on (samples of) the training rows; the holdout plays no part in it.
    selection = race(x_train, y_train, random_state=random_state)
    algorithm = selection.winner
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
        selection_auc={k: round(v, 4) for k, v in selection.auc.items()},
        selection_rounds=selection.rounds,
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
