"""Benchmark: the propensity models' learner selection (optimizer/ml/propensity.py): 3-fold CV, then the race.

Until issue 15 the selection compared three learners by 3-fold cross-validated ROC AUC on a sample of at most
30,000 training rows; now it races them (``propensity.race``: stratified rounds of ``RACE_ROWS`` rows, a
learner more than ``DROP_Z`` paired standard errors behind leaves). Timed in the same run, interleaved, on the
same rows:

- **former**: the MinMaxScaler fitted on all the rows before the folds are split (the validation part shaped
  the scaling it was scored with), then a hand-written StratifiedKFold loop;
- **cross-validated**: ``propensity.cross_validated``, a ``Pipeline(scaler, learner)`` per candidate through
  ``cross_val_score``, the scaler fitted inside each fold (the selection before the race; still what data of at
  most ``CROSS_VALIDATION_ROWS`` rows gets);
- **race**: ``propensity.race`` on the same rows (what training now runs above ``CROSS_VALIDATION_ROWS``);
- **floor**: the nine bare ``fit`` calls (3 learners x 3 folds) on the fold matrices scaled beforehand: the
  library work of the 3-fold selection, without scaling or scoring.

Rows: a synthetic frame with the conversion model's 19 columns (skewed counts, a planted logistic signal),
``--rows`` of them (default 30,000: what the 3-fold selection saw at any scale above it).

Usage::

    .venv/bin/python bench/propensity_selection.py [--rows N] [--rounds R] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from bench.report import table, write_section  # noqa: E402
from optimizer.ml import propensity  # noqa: E402
from optimizer.ml.metrics import auc  # noqa: E402


def frame(rows: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    counts = rng.negative_binomial(2, 0.3, size=(rows, 8)).astype(float)  # sent, opens, views, ... (skewed)
    days = rng.exponential(30.0, size=(rows, 4))  # recencies, tenure, span
    rates = rng.beta(2, 8, size=(rows, 4))
    segment = np.eye(3)[rng.integers(0, 3, rows)]
    x = np.hstack([days, counts, rates, segment])[:, :19]
    logit = -2.5 + 0.25 * np.log1p(counts[:, 4]) + 1.5 * rates[:, 2] - 0.01 * days[:, 0] + 0.4 * segment[:, 2]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def former_select(x: np.ndarray, y: np.ndarray, random_state: int = 0) -> dict[str, float]:
    """The selection as it was: scaler fitted on every row before the split, a hand-written fold loop."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import MinMaxScaler

    xs = MinMaxScaler(clip=True).fit(x).transform(x)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=random_state)
    out = {}
    for name in propensity.candidates(random_state, len(x)):
        scores = []
        for fit_part, val_part in folds.split(xs, y):
            est = propensity.candidates(random_state, len(fit_part))[name].fit(xs[fit_part], y[fit_part])
            scores.append(auc(y[val_part], est.predict_proba(xs[val_part])[:, 1]) or 0.0)
        out[name] = float(np.mean(scores))
    return out


def floor_fits(x: np.ndarray, y: np.ndarray, random_state: int = 0) -> None:
    """The nine bare fits on matrices scaled beforehand (no scaling, no prediction, no scoring timed)."""
    for fit_x, fit_y in FOLD_MATRICES:
        for estimator in propensity.candidates(random_state, len(fit_x)).values():
            estimator.fit(fit_x, fit_y)


FOLD_MATRICES: list[tuple[np.ndarray, np.ndarray]] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not write docs/BENCHMARKS.md")
    args = parser.parse_args()

    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import MinMaxScaler

    x, y = frame(args.rows)
    xs = MinMaxScaler(clip=True).fit(x).transform(x)
    for fit_part, _ in StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(xs, y):
        FOLD_MATRICES.append((xs[fit_part], y[fit_part]))

    times: dict[str, list[float]] = {"former": [], "cross-validated": [], "race": [], "floor": []}
    scores: dict[str, dict[str, float]] = {}
    winners: dict[str, str] = {}

    def race() -> dict[str, float]:
        selection = propensity.race(x, y, random_state=0)
        winners["race"] = selection.winner  # the last round's leader (a dropped learner's AUC is an earlier round's)
        return selection.auc

    load_start = os.getloadavg()
    with threadpool_limits(propensity.THREADS):
        floor_fits(x, y)  # warm-up: imports, first allocations
        for _ in range(args.rounds):  # interleaved, so a busy spell on the shared machine hits all three
            for what, fn in (("former", lambda: former_select(x, y)),
                             ("cross-validated", lambda: propensity.cross_validated(x, y, random_state=0)),
                             ("race", race), ("floor", lambda: floor_fits(x, y))):
                t0 = time.perf_counter()
                out = fn()
                times[what].append(time.perf_counter() - t0)
                if out is not None:
                    scores[what] = out
    load_end = os.getloadavg()
    floor = statistics.median(times["floor"])
    rows = []
    for what, label in (("floor", "floor: 9 bare fits on pre-scaled folds"),
                        ("former", "former: scaler fitted before the split, hand-written folds"),
                        ("cross-validated", "3-fold: Pipeline(scaler, learner) + cross_val_score"),
                        ("race", "race: stratified rounds, drop > DROP_Z paired SE behind")):
        median = statistics.median(times[what])
        chosen = winners.get(what) or (max(sorted(scores[what]), key=lambda n: scores[what][n]) if what in scores else "")
        rows.append({
            "what": label, "median s": f"{median:.2f}", "rounds s": ", ".join(f"{t:.2f}" for t in times[what]),
            "x floor": f"{median / floor:.2f}",
            "selection AUC": ", ".join(f"{n} {v:.4f}" for n, v in sorted(scores.get(what, {}).items())),
            "chosen": chosen,
        })
    columns = ["what", "median s", "rounds s", "x floor", "selection AUC", "chosen"]
    print(table(rows, columns))
    if not args.no_write:
        body = (
            f"{args.rows:,} synthetic rows x 19 columns (the former selection sample), {args.rounds} interleaved rounds, "
            f"one OpenMP thread (as the job). Load average (1 min) {load_start[0]:.1f} at start, {load_end[0]:.1f} at end "
            "(2 cores, shared with other work: compare the ratios, not the seconds).\n\n" + table(rows, columns)
        )
        print("wrote", write_section("propensity_selection", "Propensity learner selection: 3-fold cross-validation and the race", body))


if __name__ == "__main__":
    main()
