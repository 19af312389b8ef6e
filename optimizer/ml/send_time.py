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
