"""Send time: each customer's best local hour from their open history, shrunk toward their segment.

Input is one row per customer: 24 counts of opens by *local* hour (``optimizer.features``
converts each open to the customer's IANA time zone) and a segment code.

Model (empirical Bayes): a customer's open-hour distribution is Dirichlet with mean ``p_seg``
(the segment's pattern, itself shrunk toward the population's) and concentration ``alpha``.
``alpha`` is fitted by maximising the Dirichlet-multinomial marginal likelihood of the training
histograms over a log grid. The posterior mean is ``(counts + alpha * p_seg) / (n + alpha)``:
a customer with few opens keeps mostly the segment's pattern, one with many follows their own.

Hours are circular: a candidate hour is scored by the posterior mass within +-1 hour of it
(23:00 and 00:00 are neighbours), and the hour with the largest window mass is recommended.

Below ``MIN_EVENTS`` opens (fewer than 5) a customer gets the population's best hour and
method "fallback": too little history to say anything personal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import gammaln

from optimizer.ml.metrics import HOURS, circular_hour_distance, window_mass

MIN_EVENTS = 5
ALPHA_GRID = np.geomspace(0.5, 200.0, 28)
# Pseudo-opens pulling a segment's pattern toward the population's (segments are large; this matters little).
SEGMENT_PRIOR_WEIGHT = 50.0
WINDOW = 1  # hours either side: "within one hour"
ALPHA_SAMPLE = 50_000  # customers used to fit alpha


def _normalise(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.full_like(counts, 1.0 / HOURS, dtype=float), where=total > 0)


def dirichlet_multinomial_loglik(counts: np.ndarray, prior: np.ndarray) -> float:
    """Sum over customers of log P(counts | Dirichlet(prior)) up to the multinomial coefficient."""
    a0 = prior.sum(axis=1)
    n = counts.sum(axis=1)
    return float((gammaln(a0) - gammaln(n + a0) + (gammaln(counts + prior) - gammaln(prior)).sum(axis=1)).sum())


def fit(
    counts: np.ndarray, segments: np.ndarray, holdout_counts: np.ndarray | None = None, *, n_segments: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the population and segment patterns and the concentration ``alpha`` on training counts.

    ``counts`` (n, 24) opens by local hour before the cut-off; ``segments`` (n,) integer codes
    (-1 = none); ``holdout_counts`` (n, 24) opens after the cut-off, used only for the metrics.
    """
    counts = np.asarray(counts, dtype=float)
    segments = np.asarray(segments, dtype=int)
    n_segments = int(n_segments if n_segments is not None else max(segments.max(initial=-1) + 1, 0))
    population = _normalise(counts.sum(axis=0) + 1.0)  # +1: no hour has zero probability
    segment_patterns = np.tile(population, (max(n_segments, 1), 1))
    for s in range(n_segments):
        seg_counts = counts[segments == s].sum(axis=0)
        segment_patterns[s] = _normalise(seg_counts + SEGMENT_PRIOR_WEIGHT * population)

    informative = np.flatnonzero(counts.sum(axis=1) > 0)
    # alpha is one number: an evenly spaced sample of customers pins it down as well as all of them.
    sample = informative[:: max(1, len(informative) // ALPHA_SAMPLE)]
    base = _prior_patterns(population, segment_patterns, segments)[sample]
    likelihoods = [dirichlet_multinomial_loglik(counts[sample], alpha * base) for alpha in ALPHA_GRID]
    alpha = float(ALPHA_GRID[int(np.argmax(likelihoods))]) if len(sample) else float(ALPHA_GRID[-1])

    artifact = {
        "population": population,
        "segment_patterns": segment_patterns,
        "alpha": alpha,
        "min_events": MIN_EVENTS,
        "window": WINDOW,
        "population_hour": int(np.argmax(window_mass(population, WINDOW))),
    }
    metrics: dict[str, Any] = {"alpha": alpha, "train_customers": int(len(informative))}
    if holdout_counts is not None:
        metrics.update(evaluate(artifact, counts, segments, holdout_counts))
    return artifact, metrics


def _prior_patterns(population: np.ndarray, segment_patterns: np.ndarray, segments: np.ndarray) -> np.ndarray:
    safe = np.clip(segments, 0, len(segment_patterns) - 1)
    patterns = segment_patterns[safe]
    patterns[segments < 0] = population
    return patterns


def posterior(artifact: dict[str, Any], counts: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Posterior mean open-hour distribution per customer, (n, 24)."""
    counts = np.asarray(counts, dtype=float)
    prior = _prior_patterns(artifact["population"], artifact["segment_patterns"], np.asarray(segments, dtype=int))
    alpha = artifact["alpha"]
    return (counts + alpha * prior) / (counts.sum(axis=1, keepdims=True) + alpha)


def recommend(artifact: dict[str, Any], counts: np.ndarray, segments: np.ndarray) -> dict[str, np.ndarray]:
    """Per customer: recommended local ``hour``, ``personal`` flag, ``expected_improvement`` (percent),
    ``confidence`` in [0, 1] and ``events_used``."""
    counts = np.asarray(counts, dtype=float)
    events = counts.sum(axis=1)
    post = posterior(artifact, counts, segments)
    windows = window_mass(post, artifact["window"])
    personal_hour = np.argmax(windows, axis=1)
    personal = events >= artifact["min_events"]
    pop_hour = artifact["population_hour"]
    hour = np.where(personal, personal_hour, pop_hour)
    chosen = windows[np.arange(len(hour)), hour]
    at_population_hour = windows[:, pop_hour]
    # Relative gain in expected open share versus the one-size-fits-all population hour.
    improvement = np.where(personal, (chosen / np.maximum(at_population_hour, 1e-12) - 1.0) * 100.0, 0.0)
    confidence = events / (events + artifact["alpha"])
    return {
        "hour": hour.astype(int),
        "personal": personal,
        "expected_improvement": np.round(improvement, 2),
        "confidence": np.clip(confidence, 0.0, 1.0),
        "events_used": events.astype(int),
    }


def evaluate(artifact: dict[str, Any], counts: np.ndarray, segments: np.ndarray, holdout_counts: np.ndarray) -> dict[str, Any]:
    """Share of later (holdout) opens within +-1 h of the recommended hour, vs the population hour."""
    holdout_counts = np.asarray(holdout_counts, dtype=float)
    rec = recommend(artifact, counts, segments)
    hours = np.arange(HOURS)
    near_rec = circular_hour_distance(hours[None, :], rec["hour"][:, None]) <= artifact["window"]
    near_pop = circular_hour_distance(hours, artifact["population_hour"]) <= artifact["window"]
    total = holdout_counts.sum()
    if total == 0:
        return {"holdout_hit_rate": None, "population_hit_rate": None, "holdout_opens": 0}
    return {
        "holdout_hit_rate": float((holdout_counts * near_rec).sum() / total),
        "population_hit_rate": float((holdout_counts * near_pop[None, :]).sum() / total),
        "holdout_opens": int(total),
        "personal_share": float(rec["personal"].mean()) if len(rec["personal"]) else 0.0,
    }


# --- Policy comparison: one fixed hour for everyone vs each customer's own hour ------------------------
# The open probability of a send at local hour h: the customer's open rate (opens per send, shrunk toward the
# audience's with OPEN_RATE_PRIOR_SENDS pseudo-sends) times how much of their open-hour distribution lies
# within +-WINDOW hours of h, relative to a send at a random hour (whose window holds 3/24 of it on average):
#     q_c(h) = min(1, rate_c * W_c(h) / (2 * WINDOW + 1) * 24)
OPEN_RATE_PRIOR_SENDS = 10.0
POLICY_DRAWS = 250  # posterior draws for the interval
POLICY_SAMPLE = 1000  # customers per posterior draw at most (a bootstrap sample: the interval stays honest)
INTERVAL = 0.90


@dataclass(frozen=True)
class PolicyGain:
    customers: int
    opens_current: float  # expected opens of one send to every customer of the audience, current policy
    opens_personal: float  # the same at each customer's recommended hour
    relative_gain: float  # (personal - current) / current, percent (posterior mean)
    interval: tuple[float, float]  # INTERVAL credible interval of relative_gain, percent
    prob_gain: float  # posterior P(personal opens more)
    moved: int  # customers whose recommended local hour differs from the current one's


def open_probability(artifact: dict[str, Any], pattern: np.ndarray, open_rate: np.ndarray, local_hours: np.ndarray) -> np.ndarray:
    """q_c(h_c) for each customer: ``pattern`` (n, 24) open-hour distributions, ``local_hours`` (n,) send hours."""
    window = artifact["window"]
    mass = window_mass(pattern, window)[np.arange(len(local_hours)), np.asarray(local_hours, dtype=int) % HOURS]
    return np.minimum(1.0, open_rate * mass * HOURS / (2 * window + 1))


def _window_members(hours: np.ndarray, window: int) -> np.ndarray:
    """(n, 24): True for the local hours within +-``window`` of each customer's hour (circular)."""
    return circular_hour_distance(np.arange(HOURS)[None, :], np.asarray(hours, dtype=int)[:, None]) <= window


def policy_gain(
    artifact: dict[str, Any],
    counts: np.ndarray,
    segments: np.ndarray,
    sends: np.ndarray,
    opens: np.ndarray,
    current_local_hours: np.ndarray,
    personal_hours: np.ndarray,
    *,
    draws: int = POLICY_DRAWS,
    sample: int = POLICY_SAMPLE,
    seed: int = 0,
) -> PolicyGain | None:
    """Expected opens of the audience under its current hours vs ``personal_hours``, with a credible interval.

    Point estimate: the posterior means (open-hour distribution ``posterior``; open rate shrunk to the
    audience's). Interval: each draw takes a Bayesian bootstrap of (at most ``sample``) customers (Dirichlet
    weights, so the audience's make-up is uncertain too), a Dirichlet draw of each one's open-hour
    distribution from its posterior and a Beta draw of their open rate, and computes the relative gain.
    None for an empty audience.
    """
    counts = np.asarray(counts, dtype=float)
    n = len(counts)
    if n == 0:
        return None
    sends = np.asarray(sends, dtype=float)
    opens = np.minimum(np.asarray(opens, dtype=float), sends)
    pooled = (opens.sum() + 0.5) / (sends.sum() + 1.0)
    a_rate = pooled * OPEN_RATE_PRIOR_SENDS + opens
    b_rate = (1 - pooled) * OPEN_RATE_PRIOR_SENDS + (sends - opens)
    current = np.asarray(current_local_hours, dtype=int) % HOURS
    personal = np.asarray(personal_hours, dtype=int) % HOURS

    post = posterior(artifact, counts, segments)
    rate = a_rate / (a_rate + b_rate)
    q_cur = open_probability(artifact, post, rate, current)
    q_new = open_probability(artifact, post, rate, personal)
    opens_current, opens_personal = float(q_cur.sum()), float(q_new.sum())

    # Only the mass inside the two windows matters, and the sum of independent gammas is a gamma: a draw of the
    # four parts (both windows, current only, personal only, neither) is a draw of the whole distribution.
    prior = _prior_patterns(artifact["population"], artifact["segment_patterns"], np.asarray(segments, dtype=int))
    concentration = counts + artifact["alpha"] * prior
    in_current, in_personal = _window_members(current, artifact["window"]), _window_members(personal, artifact["window"])
    parts = np.stack(
        [(concentration * m).sum(axis=1) for m in (in_current & in_personal, in_current & ~in_personal, ~in_current & in_personal, ~in_current & ~in_personal)],
        axis=1,
    )
    scale = HOURS / (2 * artifact["window"] + 1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(draws, min(n, sample)))  # all draws at once: (draws, customers)
    weights = rng.exponential(size=idx.shape)  # normalised below: Dirichlet(1, ..., 1) bootstrap weights
    g = rng.gamma(parts[idx])
    total = np.maximum(g.sum(axis=2), 1e-300)
    r = rng.beta(a_rate[idx], b_rate[idx])
    cur = (weights * np.minimum(1.0, r * (g[..., 0] + g[..., 1]) / total * scale)).sum(axis=1)
    new = (weights * np.minimum(1.0, r * (g[..., 0] + g[..., 2]) / total * scale)).sum(axis=1)
    gains = np.where(cur > 0, (new / np.maximum(cur, 1e-300) - 1.0) * 100.0, 0.0)
    tail = (1.0 - INTERVAL) / 2
    return PolicyGain(
        customers=n,
        opens_current=opens_current,
        opens_personal=opens_personal,
        relative_gain=(opens_personal / opens_current - 1.0) * 100.0 if opens_current > 0 else 0.0,
        interval=(float(np.quantile(gains, tail)), float(np.quantile(gains, 1 - tail))),
        prob_gain=float(np.mean(gains > 0)),
        moved=int(np.sum(current != personal)),
    )
