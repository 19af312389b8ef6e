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


# Customers per block in recommend: each (rows, 24) float array it builds is then ~19 MB, not ~190 MB per
# million customers (five of them at once held the training job over 2 GB; docs/BENCHMARKS.md, scaling).
RECOMMEND_BLOCK_ROWS = 100_000


def recommend(artifact: dict[str, Any], counts: np.ndarray, segments: np.ndarray) -> dict[str, np.ndarray]:
    """Per customer: recommended local ``hour``, ``personal`` flag, ``expected_improvement`` (percent),
    ``confidence`` in [0, 1] and ``events_used``. Each customer's answer is their own row's: computed a block of
    customers at a time."""
    segments = np.asarray(segments)
    blocks = [_recommend_rows(artifact, counts[i:i + RECOMMEND_BLOCK_ROWS], segments[i:i + RECOMMEND_BLOCK_ROWS])
              for i in range(0, len(counts), RECOMMEND_BLOCK_ROWS)]
    if len(blocks) == 1:
        return blocks[0]
    if not blocks:
        blocks = [_recommend_rows(artifact, np.zeros((0, HOURS)), segments[:0])]
    return {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}


def _recommend_rows(artifact: dict[str, Any], counts: np.ndarray, segments: np.ndarray) -> dict[str, np.ndarray]:
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
    holdout_counts = np.asarray(holdout_counts)
    rec = recommend(artifact, counts, segments)
    hours = np.arange(HOURS)
    near_pop = circular_hour_distance(hours, artifact["population_hour"]) <= artifact["window"]
    total = float(holdout_counts.sum())
    if total == 0:
        return {"holdout_hit_rate": None, "population_hit_rate": None, "holdout_opens": 0}
    near_rec_opens = 0.0
    for i in range(0, len(holdout_counts), RECOMMEND_BLOCK_ROWS):  # (rows, 24) masks a block at a time
        rows = slice(i, i + RECOMMEND_BLOCK_ROWS)
        near_rec = circular_hour_distance(hours[None, :], rec["hour"][rows, None]) <= artifact["window"]
        near_rec_opens += float((holdout_counts[rows] * near_rec).sum())
    return {
        "holdout_hit_rate": near_rec_opens / total,
        "population_hit_rate": float(holdout_counts[:, near_pop].sum()) / total,
        "holdout_opens": int(total),
        "personal_share": float(rec["personal"].mean()) if len(rec["personal"]) else 0.0,
    }


# --- Policy comparison: one fixed hour for everyone vs each customer's own hour ------------------------
# Measured on sends, not read off the open-hour histogram. Opens cluster at a customer's habitual hour whatever
# the send hour (many opens wait for it), so "open probability proportional to the open-hour distribution near h"
# overstates how much the send hour matters, and an interval around that biased figure undercovers however many
# posterior draws it takes (it covered a planted gain in about 3 of 4 simulated worlds). Instead:
#   * each customer's reference hour is learnt from the opens *before* a split moment;
#   * each send *after* it (held out: these outcomes did not choose the hour, so no winner's curse) is marked
#     opened when an open of the same customer and campaign follows it before their next send (``link_opens``);
#   * theta[k]: the share of held-out sends opened, by the send's local half-hour k counted from the start of the
#     customer's reference hour (0..47: signed and in half hours, because the response is steep and not symmetric
#     at that scale: a send half an hour before the habitual hour is not worth one half an hour after it);
#   * expected opens of one send to the audience: n * theta[0] at personal hours (sent at HH:00 local),
#     sum_c theta[k_c] at the fixed time, k_c the fixed time's local half-hour counted from c's personal hour;
#   * the interval: a bootstrap over customers (a customer's sends move together, so correlated sends are not
#     counted as independent evidence) of the whole ratio.
SLOTS = 2 * HOURS  # half-hours of a day
BOOTSTRAP_DRAWS = 400
SHRINK_SENDS = 5.0  # pseudo-sends per slot at the pooled open rate: an empty slot means "no difference"
INTERVAL = 0.90  # the interval shown is a 90 % interval of the gain
# The percentile bootstrap of this ratio is too narrow for it (at 0.90 it covered the generator's planted gain in
# 80 % of campaigns): the percentile level that reaches INTERVAL coverage was chosen by simulation
# (bench/send_time_calibration.py --choose-level, on seeds not used to report the coverage; docs/optimizer-recommendations.md).
BOOTSTRAP_LEVEL = 0.97
HELDOUT_SHARE = 1 / 3  # the last third of the lookback window is held out to measure the response


@dataclass(frozen=True)
class PolicyGain:
    customers: int
    opens_current: float  # expected opens of one send to every customer of the audience, current policy
    opens_personal: float  # the same at each customer's recommended hour
    relative_gain: float  # (personal - current) / current, percent
    interval: tuple[float, float]  # INTERVAL interval of relative_gain (bootstrap percentiles at BOOTSTRAP_LEVEL), percent
    prob_gain: float  # share of bootstrap draws in which personal opens more
    moved: int  # customers whose recommended local hour differs from the current one's
    heldout_sends: int  # sends the response curve was measured on
    response: tuple[float, float]  # share of held-out sends opened: at the customer's own hour, at the current time


def link_opens(send_key: np.ndarray, send_time: np.ndarray, open_key: np.ndarray, open_time: np.ndarray) -> np.ndarray:
    """Per send: True when an open with the same key (customer and campaign) follows it before that key's next send.

    Keys are integers, times numbers; nothing needs to be sorted. An open at the very moment of a send is that send's.
    """
    n_sends = len(send_key)
    key = np.concatenate([np.asarray(send_key), np.asarray(open_key)])
    moment = np.concatenate([np.asarray(send_time, dtype=float), np.asarray(open_time, dtype=float)])
    is_open = np.r_[np.zeros(n_sends, dtype=bool), np.ones(len(open_key), dtype=bool)]
    order = np.lexsort((is_open, moment, key))  # by key, then time; sends before opens at the same moment
    position = np.arange(len(order))
    last_send = np.maximum.accumulate(np.where(is_open[order], -1, position)) if len(order) else position
    opens_at = np.flatnonzero(is_open[order])
    previous = last_send[opens_at]
    linked = previous >= 0
    linked[linked] = key[order][previous[linked]] == key[order][opens_at[linked]]
    opened = np.zeros(n_sends, dtype=bool)
    opened[order[previous[linked]]] = True
    return opened


# Customers drawn per block of bootstrap draws: bounds bootstrap_sums' memory whatever the audience's size.
DRAW_BLOCK = 1_000_000


def bootstrap_sums(rng: np.random.Generator, n: int, values: np.ndarray, draws: int) -> np.ndarray:
    """The bootstrap over ``n`` customers of which only ``m = len(values)`` carry values (the others add zero).

    ``values`` (m, k): per counted customer, k quantities. Returns (draws, k): for each resample of the ``n``
    customers with replacement, the sums of the k quantities over the drawn customers, counted with multiplicity.
    Exactly the multinomial bootstrap's distribution: of n draws from n customers, K ~ Binomial(n, m / n) land
    among the m, each uniformly; the k quantities of one resample share its customers. Time and memory follow the
    m counted customers, not n (the multinomial weights over every customer took 3 s and 1.3 GB per campaign at
    125,000 customers, docs/BENCHMARKS.md), and at most DRAW_BLOCK drawn customers are held at a time.
    """
    m, k = values.shape
    out = np.zeros((draws, k))
    if m == 0:
        return out
    sizes = rng.binomial(n, m / n, size=draws)
    start = 0
    while start < draws:  # a block of whole resamples per gather
        stop = start + 1
        while stop < draws and sizes[start:stop + 1].sum() <= DRAW_BLOCK:
            stop += 1
        drawn = rng.integers(0, m, int(sizes[start:stop].sum()))
        owner = np.repeat(np.arange(stop - start), sizes[start:stop])
        for j in range(k):
            out[start:stop, j] = np.bincount(owner, weights=values[drawn, j], minlength=stop - start)
        start = stop
    return out


def policy_gain(
    sent_by_slot: np.ndarray,
    opened_by_slot: np.ndarray,
    reference_hours: np.ndarray,
    current_local_slots: np.ndarray,
    personal_hours: np.ndarray,
    *,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
    level: float = BOOTSTRAP_LEVEL,
    unsent: int = 0,
    unsent_moved: int = 0,
) -> PolicyGain | None:
    """Expected opens of the audience at its current send time vs ``personal_hours``, with a bootstrap interval.

    Per audience customer: ``sent_by_slot`` (n, 48) held-out sends by local half-hour and ``opened_by_slot``
    (n, 48) those of them that were opened; ``reference_hours`` their best hour learnt from opens before the
    held-out period; ``current_local_slots`` the local half-hour (0..47) the current policy sends at;
    ``personal_hours`` the recommended local hour (sent at its start). None for an empty audience.
    ``level``: the bootstrap percentile level behind the INTERVAL interval (calibrated, see BOOTSTRAP_LEVEL).
    ``unsent``: audience customers left out of the arrays because they have no held-out send (all-zero rows: the
    same answer as passing them, without an (n, 48) matrix of zeros per campaign), ``unsent_moved`` of them with a
    personal hour other than the current one.
    """
    rows_given = len(sent_by_slot)
    n = rows_given + unsent
    if n == 0:
        return None
    current = np.asarray(current_local_slots, dtype=int) % SLOTS
    personal = np.asarray(personal_hours, dtype=int) % HOURS
    sent, opened = np.asarray(sent_by_slot, dtype=float), np.asarray(opened_by_slot, dtype=float)
    rows = np.arange(rows_given)
    # Each customer's own held-out sends at exactly the two moments compared: the fixed time's local half-hour,
    # and the first half-hour of the hour learnt before the held-out period (not the stored personal hour, which
    # those outcomes helped choose: that would flatter personal hours).
    at_current = np.stack([sent[rows, current], opened[rows, current]])
    reference = 2 * (np.asarray(reference_hours, dtype=int) % HOURS)
    at_personal = np.stack([sent[rows, reference], opened[rows, reference]])
    pooled = (opened.sum() + 0.5) / (sent.sum() + 1.0)
    if not at_current[0].any() or not at_personal[0].any():
        return None  # nothing measured at one of the two moments: no evidence either way
    rng = np.random.default_rng(seed)
    # The bootstrap draws n customers with replacement; only those with a send at one of the two moments move
    # the sums, so only they are drawn (bootstrap_sums): memory and time follow them, not the audience.
    counted = np.flatnonzero((at_current[0] > 0) | (at_personal[0] > 0))

    # Customers differ in how often they open at all, and those with a send at one moment are not the same
    # customers as those with a send at the other (busier ones, other segments): each customer's share opened at a
    # moment is divided by their own share over all their held-out sends of the campaign, so the two moments are
    # compared on the same footing. Every customer with sends at that moment counts once, whatever their number
    # of sends: the policy sends each customer one notification.
    # (The customer's own share is taken over their *other* sends, so a lucky open does not also raise the divisor.)
    total_sent, total_opened = sent.sum(axis=1), opened.sum(axis=1)
    base = (total_opened + SHRINK_SENDS * pooled) / (total_sent + SHRINK_SENDS)

    def shares(at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        has = at[0] > 0
        others = (total_opened - at[1] + SHRINK_SENDS * pooled) / (total_sent - at[0] + SHRINK_SENDS)
        return np.divide(at[1], at[0] * others, out=np.zeros(rows_given), where=has), has.astype(float)

    # Columns: share and count at the current moment, then at the personal hour. Row 0: the data as they are
    # (every customer once); then one row per bootstrap resample.
    columns = np.column_stack([*shares(at_current), *shares(at_personal)])
    totals = np.vstack([columns.sum(axis=0), bootstrap_sums(rng, n, columns[counted], draws)])
    rate_current = (totals[:, 0] + 1.0) / (totals[:, 1] + 1.0)
    rate_personal = (totals[:, 2] + 1.0) / (totals[:, 3] + 1.0)
    expected_base = base.sum() + unsent * pooled  # a customer without held-out sends: the pooled rate
    personal_opens = expected_base * rate_personal
    current_opens = expected_base * rate_current
    gains = (personal_opens / current_opens - 1.0) * 100.0
    tail = (1.0 - level) / 2
    return PolicyGain(
        customers=n,
        opens_current=float(current_opens[0]),
        opens_personal=float(personal_opens[0]),
        relative_gain=float(gains[0]),
        interval=(float(np.quantile(gains[1:], tail)), float(np.quantile(gains[1:], 1 - tail))),
        prob_gain=float(np.mean(gains[1:] > 0)),
        moved=int(np.sum(current // 2 != personal)) + unsent_moved,
        heldout_sends=int(at_current[0].sum() + at_personal[0].sum()),
        response=(float(personal_opens[0] / n), float(current_opens[0] / n)),
    )
