"""Bayesian chance to beat control and expected loss under Beta(1, 1) priors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from abtests.stats._common import _check_users_conversions


@dataclass(frozen=True)
class BayesArm:
    """Posterior comparison of one treatment with the control under Beta(1, 1) priors.

    ``chance_to_beat_control`` = P(rate_t > rate_c | data); ``expected_loss`` = E[max(rate_c - rate_t, 0)]
    (the conversion rate given up, on average, by shipping this arm); ``control_expected_loss`` =
    E[max(rate_t - rate_c, 0)] (given up by keeping the control).
    """

    index: int
    chance_to_beat_control: float
    expected_loss: float
    control_expected_loss: float


@dataclass(frozen=True)
class BayesResult:
    method: str  # "quadrature" or "monte_carlo"
    arms: list[BayesArm]  # treatments only (index 1..k-1)


# Quadrature for the posterior integrals. Write the narrower posterior X as X = Q_X(Phi(z)) with z standard
# normal; E[g(X)] = integral of g(Q_X(Phi(z))) phi(z) dz is then a smooth integral over z (for large counts
# Q_X(Phi(z)) is nearly linear in z). Gauss-Legendre on [-10, 10] (normal mass outside: 1.5e-23).
_Z_NODES, _Z_WEIGHTS = np.polynomial.legendre.leggauss(128)
_Z = _Z_NODES * 10.0
_Z_W = _Z_WEIGHTS * 10.0 * np.exp(-0.5 * _Z**2) / math.sqrt(2.0 * math.pi)
_Z_LOWER = special.ndtr(np.minimum(_Z, 0.0))  # Phi(z) for z <= 0, precise in the lower tail
_Z_UPPER = special.ndtr(-np.maximum(_Z, 0.0))  # 1 - Phi(z) for z > 0, precise in the upper tail
_Z_NEG = _Z <= 0


def _beta_quantiles(a: float, b: float) -> np.ndarray:
    """Q(Phi(z)) at the quadrature nodes, accurate in both tails."""
    out = np.empty_like(_Z)
    out[_Z_NEG] = special.betaincinv(a, b, _Z_LOWER[_Z_NEG])
    out[~_Z_NEG] = special.betainccinv(a, b, _Z_UPPER[~_Z_NEG])
    return out


def _beta_sd(a: float, b: float) -> float:
    return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))


def _compare_betas(a_t: float, b_t: float, a_c: float, b_c: float) -> tuple[float, float, float]:
    """(P(T > C), E[max(C - T, 0)], E[max(T - C, 0)]) for independent T ~ Beta(a_t, b_t), C ~ Beta(a_c, b_c).

    One quadrature over the narrower posterior; the inner expectations over the other one are closed
    forms via the size-biased Beta identity y f_{a,b}(y) = mean * f_{a+1,b}(y):
    E[(C - x)+] = mean_C S_{a_c+1,b_c}(x) - x S_C(x) and E[(x - C)+] = x F_C(x) - mean_C F_{a_c+1,b_c}(x).
    """
    if _beta_sd(a_t, b_t) <= _beta_sd(a_c, b_c):
        x, (a_o, b_o), flip = _beta_quantiles(a_t, b_t), (a_c, b_c), False
    else:
        x, (a_o, b_o), flip = _beta_quantiles(a_c, b_c), (a_t, b_t), True
    mean_o = a_o / (a_o + b_o)
    cdf, sf = special.betainc(a_o, b_o, x), special.betaincc(a_o, b_o, x)
    cdf_plus, sf_plus = special.betainc(a_o + 1.0, b_o, x), special.betaincc(a_o + 1.0, b_o, x)
    other_above = np.maximum(mean_o * sf_plus - x * sf, 0.0)  # E[(O - x)+]
    other_below = np.maximum(x * cdf - mean_o * cdf_plus, 0.0)  # E[(x - O)+]
    if not flip:  # x are draws of T, O is C
        prob = float(np.dot(_Z_W, cdf))
        loss_t, loss_c = float(np.dot(_Z_W, other_above)), float(np.dot(_Z_W, other_below))
    else:  # x are draws of C, O is T
        prob = float(np.dot(_Z_W, sf))
        loss_t, loss_c = float(np.dot(_Z_W, other_below)), float(np.dot(_Z_W, other_above))
    return min(1.0, max(0.0, prob)), max(0.0, loss_t), max(0.0, loss_c)


def chance_to_beat_control(
    users: Sequence[int], conversions: Sequence[int], draws: int | None = None, seed: int | None = None
) -> BayesResult:
    """Per treatment arm: P(rate > control rate) and expected losses, Beta(1, 1) priors.

    By default computed by deterministic quadrature (see docs/statistics.md for the measured accuracy).
    Pass ``draws`` to use seeded Monte Carlo instead (precision ~ 0.5/sqrt(draws)).
    """
    n, c = _check_users_conversions(users, conversions)
    a = c + 1.0
    b = n - c + 1.0
    arms: list[BayesArm] = []
    if draws is not None:
        if int(draws) < 1000:
            raise ValueError("draws must be at least 1000")
        rng = np.random.default_rng(seed)
        control = rng.beta(a[0], b[0], size=int(draws))
        for j in range(1, n.size):
            t = rng.beta(a[j], b[j], size=int(draws))
            arms.append(BayesArm(
                index=j, chance_to_beat_control=float(np.mean(t > control)),
                expected_loss=float(np.mean(np.maximum(control - t, 0.0))),
                control_expected_loss=float(np.mean(np.maximum(t - control, 0.0))),
            ))
        return BayesResult(method="monte_carlo", arms=arms)
    for j in range(1, n.size):
        prob, loss_t, loss_c = _compare_betas(a[j], b[j], a[0], b[0])
        arms.append(BayesArm(index=j, chance_to_beat_control=prob, expected_loss=loss_t, control_expected_loss=loss_c))
    return BayesResult(method="quadrature", arms=arms)
