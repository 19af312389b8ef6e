"""Demo data with a planted truth: a pure generator (numpy + pandas, no Django).

``generate(DemoConfig(...))`` returns the merchants, customers, offers, campaigns and the event stream
of a marketing platform, plus the truth that was planted in it (``DemoData.truth``). The later
models (send time, offer response, merchant affinity, ROI) must recover that truth from the events
alone, so every planted fact acts on the events through probabilities, never as a label.

The generative model (docs/demo-data.md has the long form):

* each customer has a **preferred local hour**; a notification sent near it is more likely to be
  opened, and opens happen at or right after it, so it is the modal local open hour;
* each notification carries an offer drawn uniformly from the ladder; the chance that a click turns
  into a conversion depends on the offer **per segment**, along a response curve drawn per seed
  (``offer_curves``), so one offer maximises expected profit per segment (``best_offer``), and which
  one differs between seeds (from no discount to the largest);
* views, clicks and conversions go to a merchant drawn from a **latent customer-merchant
  preference** (low-rank factors plus merchant popularity);
* each campaign has a **planted ROI**: its daily ``spend`` events are scaled so that
  (revenue - spend) / spend equals it.

Everything is vectorised: loops run per day, per segment or per time zone, never per event.
Deterministic for a given config (seed included).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

SEGMENTS = ("new_users", "returning_users", "high_value_users")
SEGMENT_SHARE = (0.30, 0.50, 0.20)

# IANA zones across the world (one with a half-hour offset, several with DST), and their weights.
TIMEZONES = (
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
)
TIMEZONE_SHARE = (0.14, 0.18, 0.10, 0.14, 0.14, 0.10, 0.10, 0.10)

# Preferred local hours: commute, lunch and evening peaks, but every hour possible.
HOUR_WEIGHTS = np.array(
    [1, 0.5, 0.3, 0.3, 0.3, 0.5, 2, 5, 6, 4, 2, 2, 5, 4, 2, 2, 2, 3, 5, 7, 8, 7, 4, 2], dtype=float
)

OFFER_LADDER = (0, 10, 20, 30, 40, 50)  # percent off
# P(conversion | click, offer) per segment is drawn per seed (``offer_curves``): each segment gets its
# own best offer (three different rungs per seed, so across seeds every rung wins, 0 % and 50 %
# included). Conversion never falls as the discount grows; it rises up to the best offer (each rung
# below it earns at most OFFER_LEFT_RATIO of the next rung's expected profit per click) and stays flat
# after it, so the next rung up loses exactly its discount's share of the margin (10-20 %: with a
# conversion that never falls, no curve can lose more there).
OFFER_PLATEAU = (0.15, 0.35)  # P(conversion | click) at and above the best offer, drawn uniformly
OFFER_LEFT_RATIO = (0.6, 0.8)  # profit of a rung / profit of the next rung up, below the best offer
ORDER_VALUE = {"new_users": 45.0, "returning_users": 70.0, "high_value_users": 150.0}  # mean, before discount
SEGMENT_OPEN_FACTOR = {"new_users": 0.9, "returning_users": 1.0, "high_value_users": 1.2}

CHANNELS = ("push", "email", "sms", "in_app")
CHANNEL_SHARE = (0.5, 0.25, 0.1, 0.15)
CHANNEL_OPEN_FACTOR = {"push": 1.0, "email": 0.8, "sms": 1.3, "in_app": 1.1}

EVENT_TYPES = ("notification_sent", "notification_opened", "view", "click", "conversion", "spend")
SENT, OPENED, VIEW, CLICK, CONVERSION, SPEND = range(6)

MERCHANT_CATEGORIES = ("food", "fashion", "electronics", "travel", "beauty", "home", "sports", "groceries")
_MERCHANT_WORDS = (
    ("Golden", "Urban", "Blue", "Little", "Green", "Royal", "Happy", "Northern", "Silver", "Sunny"),
    ("Bakery", "Outfitters", "Gadgets", "Voyages", "Glow", "Nest", "Athletics", "Market", "Kitchen", "Studio"),
)

# Funnel and timing parameters (seconds).
BASE_OPEN = 0.10  # open probability far from the preferred hour (before customer factors)
PEAK_OPEN = 0.60  # extra open probability exactly at the preferred hour
HOUR_SPREAD = 1.5  # hours: width of the open-probability bump around the preferred hour
OPEN_AT_PREFERRED_HOUR = 0.4  # share of opens that wait for the preferred hour
P_VIEW_GIVEN_OPEN = 0.70
P_CLICK_GIVEN_VIEW = 0.60
MERCHANT_EXPLORE = 0.10  # share of views going to a merchant by popularity only
TOP_K = 20  # preference candidates kept per customer
CONSIDERATION = 256  # merchants a customer knows of, when there are more
FACTORS = 8
MAX_OPEN_PROBABILITY = 0.95


@dataclass(frozen=True)
class DemoConfig:
    customers: int = 2000
    merchants: int = 40
    campaigns: int = 12
    days: int = 60
    seed: int = 7
    # Last generated day (inclusive). The window is the `days` days ending on it.
    end_date: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())
    sends_per_day: float = 1.5  # mean notifications per customer per day (activity is heavy-tailed)
    not_after: dt.datetime | None = None  # drop events after this instant (e.g. "now" for today)
    id_prefix: str = "demo_"  # every external id starts with it, so demo rows are recognisable

    def __post_init__(self) -> None:
        for name in ("customers", "merchants", "campaigns", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.sends_per_day <= 0:
            raise ValueError("sends_per_day must be positive")

    @property
    def start_date(self) -> dt.date:
        return self.end_date - dt.timedelta(days=self.days - 1)


@dataclass
class DemoData:
    config: DemoConfig
    merchants: pd.DataFrame  # merchant_id, name, category, popularity
    customers: pd.DataFrame  # customer_id, segment, timezone, signup_date, preferred_hour, activity
    offers: pd.DataFrame  # offer_id, kind, value
    campaigns: pd.DataFrame  # campaign_id, name, merchant_id, status, channel, start/end, budget, ...
    events: pd.DataFrame  # the Event wire format; see EVENT_COLUMNS
    truth: dict
    # Latent merchant preference, for extensions that draw more purchases (e.g. the A/B plant):
    # per customer the TOP_K candidate merchant indexes and their cumulative choice probabilities.
    preference_candidates: np.ndarray
    preference_cumprob: np.ndarray
    merchant_popularity_cumprob: np.ndarray

    def sample_merchants(self, customer_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Merchant indexes for purchases by these customers (row indexes of ``customers``)."""
        return _sample_merchants(
            customer_idx, self.preference_candidates, self.preference_cumprob, self.merchant_popularity_cumprob, rng
        )


# Columns of DemoData.events. Ids are pandas Categoricals of the external ids (cheap at 10M rows);
# amounts are exact integer cents (``amount_cents``, nullable): revenue of a conversion, cost of a spend.
EVENT_COLUMNS = (
    "event_id",
    "type",
    "occurred_at",
    "customer_id",
    "campaign_id",
    "merchant_id",
    "offer_id",
    "variant",
    "amount_cents",
    "channel",  # the campaign's channel (push, email, sms, in_app): each event came through it
)


def generate(config: DemoConfig) -> DemoData:
    # Stream 8 was added after the others: spawn(9)[:8] are the same streams as spawn(8) was.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(9)]
    conversion_given_click = offer_curves(streams[8])
    merchants, merchant_factors = _merchants(config, streams[0])
    customers, customer_factors = _customers(config, streams[1])
    offers = pd.DataFrame(
        {
            "offer_id": [f"{config.id_prefix}off_{v}pct" for v in OFFER_LADDER],
            "kind": "percent",
            "value": list(OFFER_LADDER),
        }
    )
    candidates, cumprob, top10 = _preferences(
        customer_factors, merchant_factors, merchants["popularity"].to_numpy(), streams[7]
    )
    popularity_cumprob = np.cumsum(_softmax(merchants["popularity"].to_numpy()))
    campaigns = _campaigns(config, merchants, streams[2])

    sends = _sends(config, customers, campaigns, streams[3])
    funnel = _funnel(
        config, customers, campaigns, sends, candidates, cumprob, popularity_cumprob, conversion_given_click, streams[4]
    )
    spend, campaigns = _spend(config, campaigns, sends, funnel, streams[5])
    events = _assemble(config, customers, merchants, offers, campaigns, funnel, spend, streams[6])
    truth = _truth(config, customers, merchants, campaigns, events, top10, conversion_given_click)
    return DemoData(
        config=config,
        merchants=merchants,
        customers=customers,
        offers=offers,
        campaigns=campaigns,
        events=events,
        truth=truth,
        preference_candidates=candidates,
        preference_cumprob=cumprob,
        merchant_popularity_cumprob=popularity_cumprob,
    )


def offer_curves(rng: np.random.Generator) -> dict[str, tuple[float, ...]]:
    """P(conversion | click) per segment over ``OFFER_LADDER``, with a different best offer per segment.

    Built from the expected profit per click (proportional to p x (1 - discount)): 1 at the best
    rung, a ratio drawn from ``OFFER_LEFT_RATIO`` per rung below it; above it the conversion stays
    at the best rung's (a discount past saturation only gives margin away).
    """
    keep = 1 - np.asarray(OFFER_LADDER, dtype=float) / 100
    best = rng.choice(len(OFFER_LADDER), size=len(SEGMENTS), replace=False)
    curves = {}
    for segment, b in zip(SEGMENTS, best, strict=True):
        plateau = rng.uniform(*OFFER_PLATEAU)
        profit = np.ones(len(OFFER_LADDER))
        for i in range(b - 1, -1, -1):
            profit[i] = profit[i + 1] * rng.uniform(*OFFER_LEFT_RATIO)
        p = profit / keep
        p = p / p[b] * plateau
        p[b:] = plateau
        curves[segment] = tuple(round(float(v), 4) for v in p)
    return curves


def expected_profit_per_click(conversion_given_click: dict[str, tuple[float, ...]]) -> dict[str, dict[int, float]]:
    """Planted expected profit of one click, per segment and offer (before the per-send cost)."""
    return {
        segment: {
            offer: p * ORDER_VALUE[segment] * (1 - offer / 100) for offer, p in zip(OFFER_LADDER, probs, strict=True)
        }
        for segment, probs in conversion_given_click.items()
    }


def best_offers(conversion_given_click: dict[str, tuple[float, ...]]) -> dict[str, int]:
    profits = expected_profit_per_click(conversion_given_click)
    return {segment: max(by_offer, key=by_offer.get) for segment, by_offer in profits.items()}


# --- entities -------------------------------------------------------------------------------------


def _merchants(config: DemoConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    m = config.merchants
    first, second = _MERCHANT_WORDS
    idx = np.arange(m)
    names = [f"{first[i % len(first)]} {second[(i // len(first) + i) % len(second)]} {i // 100 or ''}".strip()
             for i in idx]
    frame = pd.DataFrame(
        {
            "merchant_id": [f"{config.id_prefix}m_{i}" for i in idx],
            "name": names,
            "category": rng.choice(MERCHANT_CATEGORIES, size=m),
            "popularity": rng.normal(0.0, 0.5, size=m),
        }
    )
    return frame, rng.normal(size=(m, FACTORS))


def _customers(config: DemoConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    n = config.customers
    segment = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARE)
    tz = rng.choice(len(TIMEZONES), size=n, p=TIMEZONE_SHARE)
    preferred_hour = rng.choice(24, size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    # Heavy-tailed activity (mean 1): a few customers get many notifications, many get few.
    sigma = 1.0
    activity = rng.lognormal(-sigma * sigma / 2, sigma, size=n)
    engagement = rng.lognormal(-0.045, 0.3, size=n)
    # New users signed up within the last 30 days; the others long before the window.
    days_before_end = np.where(
        segment == SEGMENTS.index("new_users"),
        rng.integers(3, 31, size=n),
        config.days + rng.integers(1, 3 * 365, size=n),
    )
    signup = pd.Timestamp(config.end_date) - pd.to_timedelta(days_before_end, unit="D")
    frame = pd.DataFrame(
        {
            "customer_id": [f"{config.id_prefix}user_{i}" for i in range(n)],
            "segment": pd.Categorical.from_codes(segment, SEGMENTS),
            "timezone": pd.Categorical.from_codes(tz, TIMEZONES),
            "signup_date": signup.date,
            "preferred_hour": preferred_hour,
            "activity": activity,
            "engagement": engagement,
        }
    )
    return frame, rng.normal(size=(n, FACTORS))


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def _preferences(
    customer_factors: np.ndarray, merchant_factors: np.ndarray, popularity: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top candidates per customer of score = 2 * <u, v> / sqrt(k) + popularity, in chunks of customers.

    With many merchants, a customer only knows a consideration set of CONSIDERATION merchants drawn at
    random (scoring every customer against 5,000 merchants would dominate the run time); the
    preference is the same low-rank score, within that set.
    """
    n, m = len(customer_factors), len(merchant_factors)
    k = min(TOP_K, m)
    width = min(m, CONSIDERATION)
    candidates = np.empty((n, k), dtype=np.int32)
    cumprob = np.empty((n, k), dtype=np.float64)
    scale = 2.0 / math.sqrt(FACTORS)
    chunk = max(1, 1_000_000 // width)
    for lo in range(0, n, chunk):
        u = customer_factors[lo : lo + chunk]
        if m <= CONSIDERATION:
            pool = np.broadcast_to(np.arange(m), (len(u), m))
            scores = scale * u @ merchant_factors.T + popularity
        else:
            pool = np.sort(rng.integers(0, m, size=(len(u), width)), axis=1)
            scores = scale * np.einsum("nf,nkf->nk", u, merchant_factors[pool]) + popularity[pool]
            scores[:, 1:][pool[:, 1:] == pool[:, :-1]] = -np.inf  # a merchant drawn twice counts once
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < width else np.broadcast_to(np.arange(width), scores.shape)
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        candidates[lo : lo + chunk] = np.take_along_axis(np.take_along_axis(pool, top, axis=1), order, axis=1)
        cumprob[lo : lo + chunk] = np.cumsum(_softmax(np.take_along_axis(top_scores, order, axis=1)), axis=1)
    cumprob[:, -1] = 1.0
    return candidates, cumprob, candidates[:, : min(10, k)]


def _sample_merchants(
    customer_idx: np.ndarray,
    candidates: np.ndarray,
    cumprob: np.ndarray,
    popularity_cumprob: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    size = len(customer_idx)
    u = rng.random(size)
    # Inverse CDF over each customer's candidates (vectorised: count cumulative probs below u).
    pick = (cumprob[customer_idx] < u[:, None]).sum(axis=1)
    chosen = candidates[customer_idx, np.minimum(pick, candidates.shape[1] - 1)]
    explore = rng.random(size) < MERCHANT_EXPLORE
    chosen[explore] = np.searchsorted(popularity_cumprob, rng.random(explore.sum()) * popularity_cumprob[-1])
    return np.minimum(chosen, len(popularity_cumprob) - 1).astype(np.int32)


def _campaigns(config: DemoConfig, merchants: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    c, days = config.campaigns, config.days
    # Mostly active; every 12 campaigns: 2 completed, 1 paused, 1 draft (campaign 0 is always active).
    pattern = ("active", "active", "active", "completed", "active", "active", "active", "paused",
               "active", "completed", "active", "draft")
    status = np.array([pattern[i % len(pattern)] for i in range(c)], dtype=object)
    first_day = np.where(np.arange(c) == 0, 0, rng.integers(0, max(1, days // 3), size=c))
    last_day = np.full(c, days - 1)  # last day with events (window day index)
    completed, paused = status == "completed", status == "paused"
    span = np.maximum(days - first_day, 1)
    last_day[completed] = first_day[completed] + (span[completed] * rng.uniform(0.4, 0.7, completed.sum())).astype(int)
    last_day[paused] = first_day[paused] + (span[paused] * rng.uniform(0.6, 0.85, paused.sum())).astype(int)
    last_day = np.clip(last_day, first_day, days - 1)
    start = pd.Timestamp(config.start_date)
    start_date = (start + pd.to_timedelta(first_day, unit="D")).date
    end_date = np.where(
        (status == "completed"), (start + pd.to_timedelta(last_day, unit="D")).date,
        (start + pd.to_timedelta(days - 1 + rng.integers(14, 60, size=c), unit="D")).date,
    )
    draft = status == "draft"
    start_date = np.where(draft, (pd.Timestamp(config.end_date) + pd.to_timedelta(7, unit="D")).date(), start_date)
    targets = []
    for i in range(c):
        if i == 0 or rng.random() < 0.4:
            targets.append(SEGMENTS)
        else:
            # A pair, so every campaign reaches customers who signed up before the window.
            pick = rng.choice(len(SEGMENTS), size=2, replace=False)
            targets.append(tuple(SEGMENTS[j] for j in sorted(pick)))
    # Planted ROI: spread from clearly negative to clearly positive, in shuffled order.
    planted_roi = np.round(rng.permutation(np.linspace(-0.6, 2.5, c)), 2) if c > 1 else np.array([1.0])
    popularity = _softmax(merchants["popularity"].to_numpy())
    channel = rng.choice(CHANNELS, size=c, p=CHANNEL_SHARE)
    merchant_idx = rng.choice(len(merchants), size=c, p=popularity)
    return pd.DataFrame(
        {
            "campaign_id": [f"{config.id_prefix}camp_{i}" for i in range(c)],
            "name": [f"{['Spring', 'Weekend', 'Flash', 'Loyalty', 'Welcome', 'Payday'][i % 6]} "
                     f"{['Boost', 'Deals', 'Rewards', 'Promo'][i // 6 % 4]} {i}" for i in range(c)],
            "merchant_id": merchants["merchant_id"].to_numpy()[merchant_idx],
            "merchant_idx": merchant_idx,
            "status": status,
            "channel": channel,
            "start_date": start_date,
            "end_date": end_date,
            "first_day": first_day,
            "last_day": np.where(draft, -1, last_day),
            "current_offer": rng.choice(OFFER_LADDER, size=c),
            "send_hour_utc": rng.integers(0, 24, size=c),
            "target_segments": targets,
            "quality": rng.lognormal(0, 0.2, size=c),
            "planted_roi": planted_roi,
        }
    )


# --- events ---------------------------------------------------------------------------------------


@dataclass
class _Sends:
    customer: np.ndarray  # customer row index
    campaign: np.ndarray  # campaign row index
    t: np.ndarray  # seconds since window start (UTC midnight of start_date)
    offer: np.ndarray  # ladder index


def _sends(config: DemoConfig, customers: pd.DataFrame, campaigns: pd.DataFrame, rng: np.random.Generator) -> _Sends:
    segment = customers["segment"].cat.codes.to_numpy()
    rate = config.sends_per_day * customers["activity"].to_numpy()
    signup_day = (pd.to_datetime(customers["signup_date"]) - pd.Timestamp(config.start_date)).dt.days.to_numpy()
    first, last = campaigns["first_day"].to_numpy(), campaigns["last_day"].to_numpy()
    targets = [set(t) for t in campaigns["target_segments"]]
    send_hour = campaigns["send_hour_utc"].to_numpy()
    by_segment = [np.flatnonzero(segment == s) for s in range(len(SEGMENTS))]
    parts_c, parts_k, parts_t = [], [], []
    for day in range(config.days):
        running = (first <= day) & (last >= day)
        for s, members in enumerate(by_segment):
            eligible_campaigns = np.flatnonzero(running & np.array([SEGMENTS[s] in t for t in targets]))
            if len(eligible_campaigns) == 0:
                continue
            members = members[signup_day[members] <= day]
            counts = rng.poisson(rate[members])
            who = np.repeat(members, counts)
            which = eligible_campaigns[rng.integers(0, len(eligible_campaigns), size=len(who))]
            # A third of sends at the campaign's send time; the rest at varied hours (so timing is learnable).
            minute = rng.uniform(0, 1440, size=len(who))
            scheduled = rng.random(len(who)) < 0.35
            minute[scheduled] = send_hour[which[scheduled]] * 60 + rng.uniform(0, 30, scheduled.sum())
            parts_c.append(who)
            parts_k.append(which)
            parts_t.append(day * 86400.0 + minute * 60.0)
    customer = np.concatenate(parts_c) if parts_c else np.empty(0, dtype=np.int64)
    return _Sends(
        customer=customer,
        campaign=np.concatenate(parts_k) if parts_k else np.empty(0, dtype=np.int64),
        t=np.concatenate(parts_t) if parts_t else np.empty(0),
        offer=rng.integers(0, len(OFFER_LADDER), size=len(customer)),
    )


def _utc_offsets(config: DemoConfig, hours: int) -> np.ndarray:
    """UTC offset in seconds per (time zone, hour since window start): DST handled by pandas."""
    grid = pd.date_range(pd.Timestamp(config.start_date, tz="UTC"), periods=hours, freq="h")
    naive = grid.tz_localize(None)
    return np.stack(
        [((grid.tz_convert(tz).tz_localize(None) - naive) / pd.Timedelta(seconds=1)).to_numpy() for tz in TIMEZONES]
    )


@dataclass
class _Funnel:
    type: np.ndarray
    t: np.ndarray
    customer: np.ndarray
    campaign: np.ndarray
    merchant: np.ndarray  # -1: none
    offer: np.ndarray
    amount_cents: np.ndarray  # -1: none


def _funnel(
    config: DemoConfig,
    customers: pd.DataFrame,
    campaigns: pd.DataFrame,
    sends: _Sends,
    candidates: np.ndarray,
    cumprob: np.ndarray,
    popularity_cumprob: np.ndarray,
    conversion_given_click: dict[str, tuple[float, ...]],
    rng: np.random.Generator,
) -> _Funnel:
    cust, camp, t, offer = sends.customer, sends.campaign, sends.t, sends.offer
    segment = customers["segment"].cat.codes.to_numpy()[cust]
    tz = customers["timezone"].cat.codes.to_numpy()[cust]
    preferred = customers["preferred_hour"].to_numpy()[cust]

    offsets = _utc_offsets(config, config.days * 24 + 24)
    local = t + offsets[tz, (t // 3600).astype(np.int64)]
    local_hour = (local % 86400) / 3600
    gap = np.abs(local_hour - (preferred + 0.5))
    gap = np.minimum(gap, 24 - gap)  # circular distance in hours
    factor = (
        customers["engagement"].to_numpy()[cust]
        * np.array([SEGMENT_OPEN_FACTOR[s] for s in SEGMENTS])[segment]
        * campaigns["channel"].map(CHANNEL_OPEN_FACTOR).to_numpy()[camp]
    )
    p_open = np.minimum(factor * (BASE_OPEN + PEAK_OPEN * np.exp(-0.5 * (gap / HOUR_SPREAD) ** 2)), MAX_OPEN_PROBABILITY)
    opened = rng.random(len(t)) < p_open
    o = np.flatnonzero(opened)
    # An open comes soon after the send, or waits for the preferred hour (the next one after the send).
    wait = rng.random(len(o)) < OPEN_AT_PREFERRED_HOUR
    soon = rng.exponential(15 * 60, size=len(o))
    target = preferred[o] * 3600 + rng.uniform(0, 3600, size=len(o))
    until_preferred = (target - local[o] % 86400) % 86400
    t_open = t[o] + np.where(wait, until_preferred, soon)

    v_mask = rng.random(len(o)) < P_VIEW_GIVEN_OPEN
    v = o[v_mask]
    t_view = t_open[v_mask] + rng.exponential(3 * 60, size=len(v))
    merchant_view = _sample_merchants(cust[v], candidates, cumprob, popularity_cumprob, rng)

    p_click = np.minimum(P_CLICK_GIVEN_VIEW * campaigns["quality"].to_numpy()[camp[v]], 0.95)
    c_mask = rng.random(len(v)) < p_click
    c = v[c_mask]
    t_click = t_view[c_mask] + rng.exponential(2 * 60, size=len(c))
    merchant_click = merchant_view[c_mask]

    conversion_table = np.array([conversion_given_click[s] for s in SEGMENTS])
    x_mask = rng.random(len(c)) < conversion_table[segment[c], offer[c]]
    x = c[x_mask]
    t_conv = t_click[x_mask] + rng.exponential(15 * 60, size=len(x))
    order_value = np.array([ORDER_VALUE[s] for s in SEGMENTS])[segment[x]] * rng.lognormal(-0.08, 0.4, size=len(x))
    discount = np.array(OFFER_LADDER, dtype=float)[offer[x]] / 100
    revenue_cents = np.maximum(np.round(order_value * 100 * (1 - discount)), 1).astype(np.int64)

    full = np.full
    return _Funnel(
        type=np.concatenate(
            [full(len(t), SENT), full(len(o), OPENED), full(len(v), VIEW), full(len(c), CLICK), full(len(x), CONVERSION)]
        ).astype(np.int8),
        t=np.concatenate([t, t_open, t_view, t_click, t_conv]),
        customer=np.concatenate([cust, cust[o], cust[v], cust[c], cust[x]]),
        campaign=np.concatenate([camp, camp[o], camp[v], camp[c], camp[x]]),
        merchant=np.concatenate(
            [full(len(t) + len(o), -1), merchant_view, merchant_click, merchant_click[x_mask]]
        ).astype(np.int32),
        offer=np.concatenate([offer, offer[o], offer[v], offer[c], offer[x]]),
        amount_cents=np.concatenate([full(len(t) + len(o) + len(v) + len(c), -1), revenue_cents]).astype(np.int64),
    )


def _window_end_seconds(config: DemoConfig) -> float:
    end = float(config.days * 86400)
    if config.not_after is not None:
        start = dt.datetime.combine(config.start_date, dt.time(), tzinfo=dt.UTC)
        end = min(end, (config.not_after - start).total_seconds())
    return end


def _spend(
    config: DemoConfig, campaigns: pd.DataFrame, sends: _Sends, funnel: _Funnel, rng: np.random.Generator
) -> tuple[_Funnel, pd.DataFrame]:
    """One spend event per campaign per running day, scaled so each campaign's ROI is the planted one."""
    c, days = len(campaigns), config.days
    horizon = _window_end_seconds(config)
    keep = funnel.t < horizon
    conv = keep & (funnel.type == CONVERSION)
    revenue = np.bincount(funnel.campaign[conv], weights=funnel.amount_cents[conv], minlength=c)
    sent_per_day = np.zeros((c, days))
    np.add.at(sent_per_day, (sends.campaign, (sends.t // 86400).astype(np.int64)), 1)
    first, last = campaigns["first_day"].to_numpy(), campaigns["last_day"].to_numpy()
    spend_time = np.arange(days) * 86400.0 + 5 * 60  # booked at 00:05 UTC
    running = (np.arange(days)[None, :] >= first[:, None]) & (np.arange(days)[None, :] <= last[:, None])
    running &= spend_time[None, :] < horizon
    # Daily cost follows the day's sends, with a floor for days with few sends.
    weight = np.where(running, sent_per_day + 0.05 * sent_per_day.mean(axis=1, keepdims=True) + 1e-9, 0)
    roi = campaigns["planted_roi"].to_numpy()
    fallback = sent_per_day.sum(axis=1) * 3.0 + 100  # cents, for a campaign without revenue
    total_cost = np.where(revenue > 0, revenue / (1 + roi), fallback)
    shares = weight / np.maximum(weight.sum(axis=1, keepdims=True), 1e-12)
    cents = np.floor(shares * total_cost[:, None]).astype(np.int64)
    camp_idx, day_idx = np.nonzero(running)
    amounts = np.maximum(cents[camp_idx, day_idx], 1)
    budget_cents = np.ceil(total_cost * 1.2 / 10_000) * 10_000  # round up to 100 currency units
    campaigns = campaigns.assign(budget_cents=np.maximum(budget_cents, 10_000).astype(np.int64))
    merchant_idx = campaigns["merchant_idx"].to_numpy()
    spend = _Funnel(
        type=np.full(len(camp_idx), SPEND, dtype=np.int8),
        t=spend_time[day_idx],
        customer=np.full(len(camp_idx), -1),
        campaign=camp_idx,
        merchant=merchant_idx[camp_idx],
        offer=np.full(len(camp_idx), -1),
        amount_cents=amounts,
    )
    return spend, campaigns


def _assemble(
    config: DemoConfig,
    customers: pd.DataFrame,
    merchants: pd.DataFrame,
    offers: pd.DataFrame,
    campaigns: pd.DataFrame,
    funnel: _Funnel,
    spend: _Funnel,
    rng: np.random.Generator,
) -> pd.DataFrame:
    parts = [funnel, spend]
    cat = {name: np.concatenate([getattr(p, name) for p in parts]) for name in _Funnel.__dataclass_fields__}
    keep = cat["t"] < _window_end_seconds(config)
    cat = {name: values[keep] for name, values in cat.items()}
    seconds = np.floor(cat["t"]).astype(np.int64)
    order = np.lexsort((cat["type"], seconds))  # chronological; funnel order within a second
    cat = {name: values[order] for name, values in cat.items()}
    seconds = seconds[order]
    n = len(seconds)
    start_ns = pd.Timestamp(config.start_date, tz="UTC").value
    # Zero-padded numbers: ids sort in time order, so the unique index on event_id grows at its right edge.
    digits = max(9, len(str(n)))
    numbers = (np.arange(n, dtype=np.int64) + 10**digits).astype(f"U{digits + 1}")
    padded = np.ascontiguousarray(numbers.view("U1").reshape(n, digits + 1)[:, 1:]).view(f"U{digits}").ravel()
    event_id = np.strings.add(f"{config.id_prefix}evt_{config.seed}_", padded).astype(object)
    amount = pd.array(cat["amount_cents"], dtype="Int64")
    amount[cat["amount_cents"] < 0] = pd.NA
    return pd.DataFrame(
        {
            "event_id": event_id,
            "type": pd.Categorical.from_codes(cat["type"], EVENT_TYPES),
            "occurred_at": pd.to_datetime(start_ns + seconds * 1_000_000_000, utc=True),
            "customer_id": pd.Categorical.from_codes(cat["customer"], customers["customer_id"]),
            "campaign_id": pd.Categorical.from_codes(cat["campaign"], campaigns["campaign_id"]),
            "merchant_id": pd.Categorical.from_codes(cat["merchant"], merchants["merchant_id"]),
            "offer_id": pd.Categorical.from_codes(cat["offer"], offers["offer_id"]),
            "variant": pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [""]),
            "amount_cents": amount,
            "channel": pd.Categorical.from_codes(
                pd.Categorical(campaigns["channel"], categories=CHANNELS).codes[cat["campaign"]], CHANNELS),
        }
    )


def _truth(
    config: DemoConfig,
    customers: pd.DataFrame,
    merchants: pd.DataFrame,
    campaigns: pd.DataFrame,
    events: pd.DataFrame,
    top10: np.ndarray,
    conversion_given_click: dict[str, tuple[float, ...]],
) -> dict:
    money = events.dropna(subset=["amount_cents"])
    by_type = money.groupby(["campaign_id", "type"], observed=True)["amount_cents"].sum()
    roi = {}
    for campaign_id in campaigns.loc[campaigns["status"] != "draft", "campaign_id"]:
        revenue = by_type.get((campaign_id, "conversion"), 0)
        cost = by_type.get((campaign_id, "spend"), 0)
        roi[campaign_id] = round(float((revenue - cost) / cost), 4) if cost else None
    merchant_ids = merchants["merchant_id"].to_numpy()
    profits = expected_profit_per_click(conversion_given_click)
    config_dict = asdict(config)
    config_dict["end_date"] = config.end_date.isoformat()
    config_dict["not_after"] = config.not_after.isoformat() if config.not_after else None
    return {
        "seed": config.seed,
        "config": config_dict,
        "window": {"start": config.start_date.isoformat(), "end": config.end_date.isoformat()},
        "preferred_hour": dict(zip(customers["customer_id"], customers["preferred_hour"].astype(int).tolist(), strict=True)),
        "best_offer": best_offers(conversion_given_click),
        "merchant_preference": dict(zip(customers["customer_id"], merchant_ids[top10].tolist(), strict=True)),
        "campaign_roi": roi,
        "offer_response": {
            segment: {
                str(offer): {"conversion_given_click": p, "expected_profit_per_click": round(profit, 4)}
                for offer, p, profit in zip(
                    OFFER_LADDER, conversion_given_click[segment], profits[segment].values(), strict=True
                )
            }
            for segment in SEGMENTS
        },
    }
