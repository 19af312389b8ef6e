"""The propensity models' learner selection: the race (optimizer/ml/propensity.py) and its statistics.

The DeLong placements and the paired standard error are checked against independent references
(scikit-learn's ROC AUC, the Mann-Whitney kernel summed pair by pair, a bootstrap of the scored rows);
the race against planted truth: a signal no linear model can rank must knock logistic regression out,
and a purely linear one must leave logistic regression the winner (simplest within one SE of the leader).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from optimizer.ml import propensity
from optimizer.ml.metrics import auc_placements, paired_auc_difference


def test_placements_average_to_the_auc_and_equal_the_pairwise_kernel_with_ties():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    score = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounded: many ties, which count half
    v10, v01 = auc_placements(y, score)
    pos, neg = score[y == 1], score[y == 0]
    kernel = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])  # Mann-Whitney, pair by pair
    np.testing.assert_allclose(v10, kernel.mean(axis=1))
    np.testing.assert_allclose(v01, kernel.mean(axis=0))
    assert v10.mean() == pytest.approx(roc_auc_score(y, score)) == pytest.approx(v01.mean())


def test_paired_standard_error_matches_a_bootstrap_of_the_scored_rows():
    rng = np.random.default_rng(11)
    n = 3000
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(signal - 1.5)))).astype(int)
    a = signal + rng.normal(0, 0.5, n)  # two correlated scorers, a the better
    b = signal + rng.normal(0, 0.9, n)
    diff, se = paired_auc_difference(y, a, b)
    assert diff == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    boot = []
    for _ in range(400):
        i = rng.integers(0, n, n)
        boot.append(roc_auc_score(y[i], a[i]) - roc_auc_score(y[i], b[i]))
    assert se == pytest.approx(np.std(boot, ddof=1), rel=0.15)
    # Pairing matters: the difference's SE is well below what two independent AUCs' SEs would add to.
    _, se_a = paired_auc_difference(y, a, rng.permutation(a))
    assert se < 0.6 * se_a


def planted(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A label driven by an interaction (x0 and x1 on the same side of 0.5): no monotone ranking finds it."""
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 5))
    same_side = (x[:, 0] > 0.5) == (x[:, 1] > 0.5)
    y = (rng.random(rows) < np.where(same_side, 0.45, 0.05)).astype(int)
    return x, y


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_race_drops_a_learner_clearly_behind_and_the_simplest_of_the_indistinguishable_wins(seed):
    x, y = planted(30_000, seed)
    selection = propensity.race(x, y, random_state=0)
    first = selection.rounds[0]
    assert first["rows"] == propensity.RACE_ROWS[0]
    assert "logistic_regression" not in first["kept"]  # ~0.5 AUC against ~0.8: far more than DROP_Z SE behind
    assert all(r["rows"] <= propensity.SELECTION_ROWS for r in selection.rounds)
    assert selection.winner in ("hist_gradient_boosting", "random_forest")
    # The winner: the simplest learner within WITHIN_SE paired standard errors of the last round's leader.
    last = selection.rounds[-1]
    assert last["leader"] == max(sorted(last["auc"]), key=lambda n: last["auc"][n])
    gaps = {**last["gap_to_leader_and_se"], last["leader"]: [0.0, 0.0]}
    assert selection.winner == last["winner"]
    diff, se = gaps[selection.winner]
    assert diff <= propensity.WITHIN_SE * se + 1e-4  # gaps are kept rounded to 4 places
    for simpler in propensity.SIMPLEST_FIRST[: propensity.SIMPLEST_FIRST.index(selection.winner)]:
        if simpler in gaps:
            assert gaps[simpler][0] > propensity.WITHIN_SE * gaps[simpler][1] - 1e-4


def test_small_data_is_cross_validated_on_every_row_as_before():
    x, y = planted(propensity.CROSS_VALIDATION_ROWS, 4)
    selection = propensity.race(x, y, random_state=0)
    assert selection.auc == propensity.cross_validated(x, y, random_state=0)
    assert [r["method"] for r in selection.rounds] == ["3-fold cross-validation"]
    assert selection.winner == max(sorted(selection.auc), key=lambda n: selection.auc[n])


def test_on_a_linear_signal_logistic_regression_wins_the_race():
    """A planted logistic signal: no learner can beat the true model's form, so the simplest stays within one SE."""
    rng = np.random.default_rng(8)
    x = rng.random((25_000, 6))
    logit = -2.0 + 2.5 * x[:, 0] - 1.5 * x[:, 1] + 1.0 * x[:, 2]
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(int)
    selection = propensity.race(x, y, random_state=0)
    assert selection.winner == "logistic_regression"
