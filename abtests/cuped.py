"""CUPED variance reduction (Deng, Xu, Kohavi & Walker 2013), on per-arm sums (pure numpy: no Django).

Each customer's metric Y in the test is adjusted by their own pre-experiment value X of the same metric:

    Y_adj = Y - theta * (X - mean(X)),   theta = cov(X, Y) / var(X)

X is fixed before assignment, so it cannot carry a treatment effect: E[Y_adj] differs between arms by
exactly the treatment effect, while var(Y_adj) = var(Y) (1 - rho^2) with rho = corr(X, Y). The same
comparison (Welch's t-test, ``stats.welch_test``) on the adjusted means and variances then gives an
interval narrower by sqrt(1 - rho^2), with the false-positive rate kept at alpha
(tests/abtests/test_cuped.py proves both by simulation).

``theta`` is pooled over arms from within-arm (co)variances, so a treatment that shifts Y does not bias
it; ``mean(X)`` is the mean over all arms. Customers with no pre-period event have X = 0 (they are
part of the covariate, not dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CupedArm:
    """One arm's sums over its users: Y (in-test metric), X (pre-period metric) and their products."""

    users: int
    y_total: float
    y_sq: float
    x_total: float
    x_sq: float
    xy: float


@dataclass(frozen=True)
class CupedResult:
    theta: float
    means: list[float]  # adjusted mean of Y per arm
    variances: list[float]  # sample variance of Y_adj per arm
    raw_variances: list[float]  # sample variance of Y per arm
    variance_reduction: float  # 1 - sum(var adj) / sum(var raw), pooled over arms (about rho^2)
    correlation: float  # pooled within-arm corr(X, Y)


def applicable(arms: Sequence[CupedArm]) -> bool:
    """CUPED needs spread in the covariate (some customers with pre-period behaviour, some without or
    with different amounts) and at least two users per arm."""
    return all(a.users >= 2 for a in arms) and sum(_var(a.users, a.x_total, a.x_sq) for a in arms) > 0


def _var(n: int, total: float, sq: float) -> float:
    return max(0.0, (sq - total * total / n) / (n - 1)) if n > 1 else 0.0


def _cov(n: int, x_total: float, y_total: float, xy: float) -> float:
    return (xy - x_total * y_total / n) / (n - 1) if n > 1 else 0.0


def adjust(arms: Sequence[CupedArm]) -> CupedResult:
    if not applicable(arms):
        raise ValueError("CUPED needs two users per arm and a covariate that varies")
    n = np.array([a.users for a in arms], dtype=np.float64)
    var_y = np.array([_var(a.users, a.y_total, a.y_sq) for a in arms])
    var_x = np.array([_var(a.users, a.x_total, a.x_sq) for a in arms])
    cov = np.array([_cov(a.users, a.x_total, a.y_total, a.xy) for a in arms])
    dof = n - 1
    pooled_var_x = float((dof * var_x).sum())
    pooled_cov = float((dof * cov).sum())
    pooled_var_y = float((dof * var_y).sum())
    theta = pooled_cov / pooled_var_x
    x_mean_all = sum(a.x_total for a in arms) / n.sum()
    means = [a.y_total / a.users - theta * (a.x_total / a.users - x_mean_all) for a in arms]
    variances = np.maximum(0.0, var_y - 2 * theta * cov + theta**2 * var_x)
    raw_total = float(var_y.sum())
    reduction = 1.0 - float(variances.sum()) / raw_total if raw_total > 0 else 0.0
    corr = pooled_cov / np.sqrt(pooled_var_x * pooled_var_y) if pooled_var_y > 0 else 0.0
    return CupedResult(theta=float(theta), means=[float(m) for m in means], variances=[float(v) for v in variances],
                       raw_variances=[float(v) for v in var_y], variance_reduction=reduction, correlation=float(corr))
