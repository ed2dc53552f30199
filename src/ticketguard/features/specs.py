"""The feature catalogue: every feature defined once, executed offline (history) and online (one request).

A feature is computed in two steps, and only the first differs between the executions:

1. **Primitives** — counts, sums, first/last times over a key and a time window, always over what was known
   *strictly before* the transaction's time ``t`` (rows at exactly ``t``, the transaction itself included,
   are not seen). Most primitives are declared below as `Aggregate` values and executed generically:
   `ticketguard.features.offline` over a whole history with sorted numpy arrays, `ticketguard.features.online`
   as SQL against the stores. A few (hold times, geo velocity, graph centrality, blacklist, buyer–seller
   pair) are written out in both, with the same definition in their docstrings here.
2. **Finishing** — `finish()` turns primitives and the transaction's own fields into the features. It is
   one vectorised function used by both executions (offline on a million rows, online on one).

Labels are used point-in-time: a label counts only if it became known strictly before ``t``
(``labelled_at < t``) *and* its transaction lies in a risk window that ends a configurable label delay before
``t`` (see `FeatureParams`). The delay keeps training and serving alike: at serving time the labels of the
last days are mostly not known yet, so a window touching them would read lower fraud rates live than in
training.

Values with no history are fixed numbers, never NaN (features are stored as JSON with each prediction):
counts and sums are 0; durations and ratios that need history are ``-1`` (`MISSING`), which the trees learn
to split on like any other value.

Pure: numpy only — no database, no clock.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Literal

import numpy as np

MISSING = -1.0
HOUR_S = 3600.0
DAY_S = 86400.0
EARTH_RADIUS_KM = 6371.0088
# Days-until-event below one hour would make the popularity score explode for sales at the door.
MIN_DAYS_UNTIL_EVENT = 1.0 / 24.0


@dataclass(frozen=True)
class FeatureParams:
    """Windows and delays the definitions depend on (from Settings, see `params_from_settings`)."""

    label_delay: timedelta = timedelta(days=7)
    risk_window: timedelta = timedelta(days=30)
    geo_window: timedelta = timedelta(hours=1)
    geo_distance_km: float = 500.0
    pagerank_damping: float = 0.85
    pagerank_tolerance: float = 1e-10
    pagerank_max_iter: int = 100
    # The feature families' windows (`FAMILIES`): activity and amounts over each of `windows`, delayed-label
    # risk over each of `risk_windows` (each ending `label_delay` before t), smoothed toward the global
    # rate with `risk_prior_weight` pseudo-transactions.
    windows: tuple[timedelta, ...] = (
        timedelta(hours=1),
        timedelta(hours=24),
        timedelta(days=7),
        timedelta(days=30),
    )
    risk_windows: tuple[timedelta, ...] = (timedelta(days=1), timedelta(days=7), timedelta(days=30))
    risk_prior_weight: float = 20.0
    # Reported fraud (`Family.risk`): known frauds among the entity's transactions in [t − w, t) with no
    # maturity offset — an entity that has just turned bad, as soon as its first frauds are reported.
    reported_windows: tuple[timedelta, ...] = (timedelta(days=7), timedelta(days=30))

    def __post_init__(self) -> None:
        if self.label_delay < timedelta(0):
            raise ValueError(f"label_delay must be >= 0, got {self.label_delay}")
        if self.risk_window <= timedelta(0):
            raise ValueError(f"risk_window must be > 0, got {self.risk_window}")
        if self.geo_window <= timedelta(0):
            raise ValueError(f"geo_window must be > 0, got {self.geo_window}")
        if self.geo_distance_km <= 0:
            raise ValueError(f"geo_distance_km must be > 0, got {self.geo_distance_km}")
        if not 0 < self.pagerank_damping < 1:
            raise ValueError(f"pagerank_damping must be in (0, 1), got {self.pagerank_damping}")
        for name in ("windows", "risk_windows", "reported_windows"):
            values = getattr(self, name)
            if (not values and name != "reported_windows") or any(w <= timedelta(0) for w in values):
                raise ValueError(f"{name} must be one or more positive durations, got {values}")
            labels = [window_label(w) for w in values]
            if len(set(labels)) != len(labels):
                raise ValueError(f"{name} must be distinct, got {labels}")
        if self.risk_prior_weight < 0:
            raise ValueError(f"risk_prior_weight must be >= 0, got {self.risk_prior_weight}")


def window_label(window: timedelta) -> str:
    """A window's name in feature names: whole hours below two days ("1h", "24h"), whole days above
    ("7d", "30d"), minutes otherwise ("90m")."""
    seconds = window.total_seconds()
    if seconds < 2 * 86400 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    raise ValueError(f"feature windows are whole minutes, got {window}")


# ---------------------------------------------------------------------------------------------- primitives
Agg = Literal["count", "sum", "sumsq", "max", "min_time", "max_time", "distinct"]
RowFilter = Literal["all", "primary", "resale", "known_fraud", "located"]


@dataclass(frozen=True)
class Aggregate:
    """One primitive: aggregate the transactions whose ``match`` columns equal the query's, strictly before t.

    ``match`` pairs (column of the past transaction, column of the transaction being scored). Rows whose
    match or aggregated column is null never match / are ignored. ``window`` restricts to
    ``[t - offset - window, t - offset)``; no window means all history before ``t - offset``.
    ``known_fraud`` keeps rows labelled fraud whose label was known before t (``labelled_at < t``);
    ``located`` keeps rows with both latitude and longitude.
    """

    name: str
    match: tuple[tuple[str, str], ...]
    agg: Agg
    value: str | None = None
    window: timedelta | None = None
    offset: timedelta = timedelta(0)
    rows: RowFilter = "all"

    @property
    def item_columns(self) -> tuple[str, ...]:
        return tuple(item for item, _ in self.match)

    @property
    def query_columns(self) -> tuple[str, ...]:
        return tuple(query for _, query in self.match)


W = "wallet_address"
E = "event_id"
K = "ticket_id"
S = "seller_address"
IP = "ip_address"
PM = "payment_method"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


# ------------------------------------------------------------------------------------------ families
@dataclass(frozen=True)
class Family:
    """Features of one entity over every window, declared once: entity × window × aggregate.

    ``column`` is the entity (a past transaction matches when its ``column`` equals the scored one's; a
    scored transaction without it gets the "none" values). Per window of `FeatureParams.windows`:

    - ``counts``: transactions in [t − w, t) → feature ``count_name`` (``{name}_txn_{w}`` by default);
    - ``amounts``: sum, mean, std, max of price_paid there, and this transaction's amount against them
      (ratio to the mean, z-score) → ``spend_name``, ``{name}_amount_mean|std|max_{w}``,
      ``amount_vs_{name}_mean_{w}``, ``amount_z_{name}_{w}``.

    Per window of `FeatureParams.risk_windows`, with ``risk``: the delayed-label risk — the known-fraud
    share of the entity's transactions in [t − delay − w, t − delay) (labels known before t), smoothed
    toward the global share of the longest risk window: (fraud + m·global) / (n + m), m =
    `FeatureParams.risk_prior_weight` → ``{name}_risk_{w}``; n → ``{name}_risk_n_{w}`` and the known frauds
    → ``{name}_risk_fraud_{w}`` (the tree sees the raw share too). And per window of
    `FeatureParams.reported_windows`, the reported fraud: the known frauds among the entity's transactions
    in [t − w, t) (no maturity offset; labels known before t) → ``{name}_fraud_reported_{w}``, and their
    share of the entity's transactions there → ``{name}_fraud_reported_share_{w}`` (−1 without the entity).

    Primitives are named ``{key}_n|spend|sq|max_{w}``, ``{key}_rn|rf_{w}`` and ``{key}_kf_{w}`` (with
    ``g_rn``/``g_rf``, the global counts); every execution (offline arrays, SQL, the in-memory state)
    derives them from here.
    """

    name: str
    key: str
    column: str
    counts: bool = False
    amounts: bool = False
    risk: bool = False
    count_name: str = "{name}_txn_{w}"
    spend_name: str = "{name}_spend_{w}"
    noun: str = ""  # how a reason names the entity ("this wallet"); "this {name}" when empty
    counted: str = "transactions"  # what its count counts ("sales by this seller")


FAMILIES: tuple[Family, ...] = (
    Family(
        "wallet",
        "w",
        "wallet_address",
        counts=True,
        amounts=True,
        risk=True,
        count_name="txn_velocity_{w}",
        spend_name="spend_{w}",
        counted="purchases by",
    ),
    Family("event", "e", "event_id", counts=True, risk=True, counted="purchases for"),
    Family("seller", "s", "seller_address", counts=True, risk=True, counted="resales by"),
    Family(
        "ip",
        "ip",
        "ip_address",
        counts=True,
        risk=True,
        count_name="ip_txn_{w}",
        noun="this IP",
        counted="purchases from",
    ),
    Family("payment_method", "pm", "payment_method", risk=True, noun="this payment method"),
)


def _window_words(label: str) -> str:
    """``24h`` → ``24 h``, ``7d`` → ``7 days``, ``90m`` → ``90 min``."""
    number, unit = label[:-1], label[-1]
    return f"{number} " + {"h": "h", "d": "days" if number != "1" else "day", "m": "min"}[unit]


@lru_cache(maxsize=1)
def _family_phrase_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """(pattern, phrase) per generated feature shape; a phrase has {v} (the value) and {w} (the window)."""
    out: list[tuple[str, str]] = [(r"amount", "amount {v}")]
    win = r"(?P<w>\d+[mhd])"
    for fam in FAMILIES:
        noun = fam.noun or f"this {fam.name.replace('_', ' ')}"

        def named(template: str, fam: Family = fam) -> str:  # a `count_name`/`spend_name` as a pattern
            return template.replace("{name}", fam.name).replace("{w}", win)

        if fam.counts:
            out.append((named(fam.count_name), f"{{v}} {fam.counted} {noun} in the last {{w}}"))
        if fam.amounts:
            out += [
                (named(fam.spend_name), f"{{v}} spent by {noun} in the last {{w}}"),
                (f"{fam.name}_amount_mean_{win}", f"{noun}'s average amount over the last {{w}}: {{v}}"),
                (f"{fam.name}_amount_std_{win}", f"spread of {noun}'s amounts over the last {{w}}: {{v}}"),
                (f"{fam.name}_amount_max_{win}", f"{noun}'s largest amount over the last {{w}}: {{v}}"),
                (
                    f"amount_vs_{fam.name}_mean_{win}",
                    f"amount is {{v}}× {noun}'s average over the last {{w}}",
                ),
                (
                    f"amount_z_{fam.name}_{win}",
                    f"amount is {{v}} standard deviations from {noun}'s average over the last {{w}}",
                ),
            ]
        if fam.risk:
            out += [
                (f"{fam.name}_risk_{win}", f"fraud rate of {noun} (matured labels, {{w}}): {{v}}"),
                (
                    f"{fam.name}_risk_n_{win}",
                    f"{{v}} transactions of {noun} (matured-label window, {{w}})",
                ),
                (
                    f"{fam.name}_risk_fraud_{win}",
                    f"{{v}} confirmed frauds of {noun} (matured-label window, {{w}})",
                ),
                (f"{fam.name}_fraud_reported_{win}", f"{{v}} frauds reported for {noun} in the last {{w}}"),
                (
                    f"{fam.name}_fraud_reported_share_{win}",
                    f"share of {noun}'s transactions in the last {{w}} reported as fraud: {{v}}",
                ),
            ]
    return tuple((re.compile(pattern + "$"), phrase) for pattern, phrase in out)


@lru_cache(maxsize=4096)
def family_phrase(feature: str) -> str | None:
    """What a generated feature means in words a reviewer reads, with ``{v}`` for its value (the API's
    reasons); None for a name the families do not generate."""
    for pattern, phrase in _family_phrase_patterns():
        found = pattern.match(feature)
        if found:
            window = found.groupdict().get("w")
            return phrase.replace("{w}", _window_words(window)) if window else phrase
    return None


def family_aggregates(params: FeatureParams) -> tuple[Aggregate, ...]:
    """The primitives `FAMILIES` need, in a stable order."""
    out: list[Aggregate] = []
    for fam in FAMILIES:
        match = ((fam.column, fam.column),)
        for window in params.windows:
            w = window_label(window)
            if fam.counts or fam.amounts:
                out.append(Aggregate(f"{fam.key}_n_{w}", match, "count", window=window))
            if fam.amounts:
                out.append(Aggregate(f"{fam.key}_spend_{w}", match, "sum", value="price_paid", window=window))
                out.append(Aggregate(f"{fam.key}_sq_{w}", match, "sumsq", value="price_paid", window=window))
                out.append(Aggregate(f"{fam.key}_max_{w}", match, "max", value="price_paid", window=window))
        if fam.risk:
            for window in params.risk_windows:
                w = window_label(window)
                risk = {"window": window, "offset": params.label_delay}
                out.append(Aggregate(f"{fam.key}_rn_{w}", match, "count", **risk))  # type: ignore[arg-type]
                out.append(
                    Aggregate(f"{fam.key}_rf_{w}", match, "count", rows="known_fraud", **risk)  # type: ignore[arg-type]
                )
            # Reported fraud: windows ending at t, no maturity offset (labels known before t).
            for window in params.reported_windows:
                w = window_label(window)
                out.append(Aggregate(f"{fam.key}_n_{w}", match, "count", window=window))
                out.append(Aggregate(f"{fam.key}_kf_{w}", match, "count", rows="known_fraud", window=window))
    widest = {"window": max(params.risk_windows), "offset": params.label_delay}
    out.append(Aggregate("g_rn", (), "count", **widest))  # type: ignore[arg-type]
    out.append(Aggregate("g_rf", (), "count", rows="known_fraud", **widest))  # type: ignore[arg-type]
    return tuple(out)


def family_feature_names(params: FeatureParams) -> tuple[str, ...]:
    """The features `FAMILIES` generate, in order (names a hand-written feature already has are skipped:
    ``txn_velocity_1h`` is both)."""
    out: list[str] = ["amount"]
    for fam in FAMILIES:
        for window in params.windows:
            w = window_label(window)
            if fam.counts:
                out.append(fam.count_name.format(name=fam.name, w=w))
            if fam.amounts:
                out.append(fam.spend_name.format(name=fam.name, w=w))
                out += [f"{fam.name}_amount_{stat}_{w}" for stat in ("mean", "std", "max")]
                out += [f"amount_vs_{fam.name}_mean_{w}", f"amount_z_{fam.name}_{w}"]
        if fam.risk:
            for window in params.risk_windows:
                w = window_label(window)
                out += [f"{fam.name}_risk_{w}", f"{fam.name}_risk_n_{w}", f"{fam.name}_risk_fraud_{w}"]
            for window in params.reported_windows:
                w = window_label(window)
                out += [f"{fam.name}_fraud_reported_{w}", f"{fam.name}_fraud_reported_share_{w}"]
    hand = set(HAND_FEATURE_NAMES)
    seen: set[str] = set()
    unique = []
    for name in out:
        if name not in hand and name not in seen:
            seen.add(name)
            unique.append(name)
    return tuple(unique)


@lru_cache(maxsize=16)
def feature_names(params: FeatureParams) -> tuple[str, ...]:
    """The whole catalogue for these parameters: the hand-written features, then the families'."""
    return HAND_FEATURE_NAMES + family_feature_names(params)


def aggregates(params: FeatureParams) -> tuple[Aggregate, ...]:
    """The declared primitives (hand-written, then the families'; a family primitive identical to a
    hand-written one is declared once); names are the keys `finish` reads."""
    declared = {a.name: a for a in _hand_aggregates(params)}
    for agg in family_aggregates(params):
        known = declared.get(agg.name)
        if known is None:
            declared[agg.name] = agg
        elif known != agg:
            raise ValueError(f"primitive {agg.name} declared twice with different definitions")
    return tuple(declared.values())


def _hand_aggregates(params: FeatureParams) -> tuple[Aggregate, ...]:
    risk = {"window": params.risk_window, "offset": params.label_delay}
    return (
        Aggregate("w_n_1h", ((W, W),), "count", window=HOUR),
        Aggregate("w_n_24h", ((W, W),), "count", window=DAY),
        Aggregate("w_spend_24h", ((W, W),), "sum", value="price_paid", window=DAY),
        Aggregate("w_n_all", ((W, W),), "count"),
        Aggregate("w_spend_all", ((W, W),), "sum", value="price_paid"),
        Aggregate("w_last_ts", ((W, W),), "max_time"),
        Aggregate("w_first_buy_ts", ((W, W),), "min_time"),
        Aggregate("w_first_sell_ts", ((S, W),), "min_time"),
        Aggregate("w_events", ((W, W),), "distinct", value=E),
        Aggregate("w_events_24h", ((W, W),), "distinct", value=E, window=DAY),
        Aggregate("ip_n_1h", ((IP, IP),), "count", window=HOUR),
        Aggregate("e_located_n", ((E, E),), "count", rows="located"),
        Aggregate("e_lat_sum", ((E, E),), "sum", value="latitude", rows="located"),
        Aggregate("e_lon_sum", ((E, E),), "sum", value="longitude", rows="located"),
        Aggregate("w_pms", ((W, W),), "distinct", value=PM),
        Aggregate("w_pm_seen", ((W, W), (PM, PM)), "count"),
        Aggregate("w_ip_seen", ((W, W), (IP, IP)), "count"),
        Aggregate("w_located_n", ((W, W),), "count", rows="located"),
        Aggregate("w_lat_sum", ((W, W),), "sum", value="latitude", rows="located"),
        Aggregate("w_lon_sum", ((W, W),), "sum", value="longitude", rows="located"),
        Aggregate("we_n_1h", ((W, W), (E, E)), "count", window=HOUR),
        Aggregate("e_sold", ((E, E),), "count", rows="primary"),
        Aggregate("e_n_all", ((E, E),), "count"),
        Aggregate("e_spend_all", ((E, E),), "sum", value="price_paid"),
        Aggregate("ip_wallets_24h", ((IP, IP),), "distinct", value=W, window=DAY),
        Aggregate("ipw_n_24h", ((IP, IP), (W, W)), "count", window=DAY),
        Aggregate("k_n", ((K, K),), "count"),
        Aggregate("k_first_ts", ((K, K),), "min_time"),
        Aggregate("k_last_ts", ((K, K),), "max_time"),
        Aggregate("k_first_resale_ts", ((K, K),), "min_time", rows="resale"),
        Aggregate("kw_n", ((K, K), (W, W)), "count"),
        Aggregate("e_risk_n", ((E, E),), "count", **risk),  # type: ignore[arg-type]
        Aggregate("e_risk_fraud", ((E, E),), "count", rows="known_fraud", **risk),  # type: ignore[arg-type]
        Aggregate("s_risk_n", ((S, S),), "count", **risk),  # type: ignore[arg-type]
        Aggregate("s_risk_fraud", ((S, S),), "count", rows="known_fraud", **risk),  # type: ignore[arg-type]
    )


# Primitives computed by hand in both executions (definitions in the feature docs below).
SPECIAL_PRIMITIVES = (
    "w_hold_n",  # resales strictly before t where the wallet was the seller and the ticket's previous
    "w_hold_sum_s",  # transaction is known: their count and the sum of (resale time − that previous time), s
    "pair_n",  # transactions strictly before t between this buyer and seller, in either direction
    "geo_max_km",  # max distance to the wallet's located transactions in [t − geo_window, t); NaN if none
    "cp_known_fraud",  # the seller's transactions (as buyer or seller) labelled fraud with labelled_at < t
    "cp_blacklisted",  # 1 if the seller is on the blacklist at t (added before t, not expired at t)
    "centrality",  # PageRank × nodes of the buyer in the latest daily graph snapshot at or before t
    "ev_capacity",  # the event's capacity, face value and start (epoch s); NaN when the event is unknown
    "ev_face_value",
    "ev_starts_s",
)


# ---------------------------------------------------------------------------------------------- catalogue
@dataclass(frozen=True)
class FeatureSpec:
    name: str
    unit: str
    doc: str


FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        "txn_velocity_1h", "count", "Transactions the buyer wallet made in [t − 1 h, t). 0 without history."
    ),
    FeatureSpec(
        "txn_velocity_24h", "count", "Transactions the buyer wallet made in [t − 24 h, t). 0 without history."
    ),
    FeatureSpec(
        "spend_24h",
        "currency",
        "Sum of price_paid of the buyer wallet's transactions in [t − 24 h, t). 0 without history.",
    ),
    FeatureSpec(
        "seconds_since_last_txn",
        "seconds",
        "t minus the time of the buyer wallet's latest transaction strictly before t; −1 if none.",
    ),
    FeatureSpec(
        "wallet_age_days",
        "days",
        "t minus the wallet's first appearance strictly before t, as buyer or as seller; 0 if never seen.",
    ),
    FeatureSpec(
        "avg_ticket_hold_time",
        "hours",
        "Mean hours the wallet held the tickets it resold strictly before t: for each resale with the "
        "wallet as seller, resale time minus the ticket's previous transaction. −1 if it resold none.",
    ),
    FeatureSpec(
        "event_popularity_score",
        "ratio",
        "sold / capacity × days_until_event^−0.5, sold = primary sales of the event strictly before t, "
        "days_until_event = (event start − t) in days, at least 1 hour. 0 if the event is unknown.",
    ),
    FeatureSpec(
        "price_deviation_ratio",
        "ratio",
        "(price_paid − reference) / reference, reference = the event's face value, or the mean price "
        "of the event's transactions strictly before t when it has none; 0 without a reference.",
    ),
    FeatureSpec(
        "price_vs_wallet_mean",
        "ratio",
        "price_paid / mean price_paid of the buyer's transactions strictly before t; −1 if none.",
    ),
    FeatureSpec(
        "cross_event_attendance",
        "count",
        "Distinct events the buyer wallet bought tickets for strictly before t. 0 without history.",
    ),
    FeatureSpec(
        "geo_velocity_flag",
        "0/1",
        "1 if any of the wallet's transactions with a location in [t − geo_window, t) lies more than "
        "geo_distance_km (great circle) from this transaction's location; 0 otherwise or unlocated.",
    ),
    FeatureSpec(
        "payment_method_diversity",
        "count",
        "Distinct payment methods of the wallet's transactions strictly before t, plus this one's if "
        "it is new. 0 without history and method.",
    ),
    FeatureSpec(
        "social_graph_centrality",
        "score",
        "PageRank (damping 0.85) of the buyer in the wallet transfer graph (seller → buyer, one edge "
        "weight per resale) built daily from resales strictly before 00:00 UTC of the snapshot day, "
        "times the graph's node count (1 = average). Uses the latest snapshot at or before t; 0 if the "
        "wallet is not in it.",
    ),
    FeatureSpec(
        "time_to_first_resale",
        "minutes",
        "For a resale: minutes from the ticket's first transaction (mint) strictly before t to its "
        "first resale (an earlier one, else this one). −1 for primary sales or an unseen ticket.",
    ),
    FeatureSpec(
        "same_event_tickets_1h",
        "count",
        "Transactions of the buyer wallet for the same event in [t − 1 h, t) (bot bursts).",
    ),
    FeatureSpec(
        "wallets_per_ip_24h",
        "count",
        "Distinct other buyer wallets with a transaction from the same IP in [t − 24 h, t). 0 without IP.",
    ),
    FeatureSpec(
        "ticket_returns_to_owner",
        "0/1",
        "1 if the buyer already bought this ticket strictly before t (it comes back: wash trading).",
    ),
    FeatureSpec(
        "repeat_pair_count",
        "count",
        "Transactions strictly before t between this buyer and this seller, either direction. 0 for "
        "primary sales.",
    ),
    FeatureSpec(
        "counterparty_blacklisted",
        "0/1",
        "1 if the seller is on the blacklist at t (added before t, not expired). 0 for primary sales.",
    ),
    FeatureSpec(
        "counterparty_known_fraud",
        "0/1",
        "1 if the seller took part (as buyer or seller) in a transaction labelled fraud whose label "
        "was known strictly before t.",
    ),
    FeatureSpec(
        "event_fraud_rate",
        "ratio",
        "Known-fraud share of the event's transactions in [t − label_delay − risk_window, "
        "t − label_delay): fraud labels known before t / all transactions there. 0 if none.",
    ),
    FeatureSpec(
        "seller_fraud_rate",
        "ratio",
        "The same rate over the transactions where this transaction's seller was the seller. 0 if none "
        "or a primary sale.",
    ),
    FeatureSpec("is_resale", "0/1", "1 for a resale, 0 for a primary sale."),
    FeatureSpec(
        "ticket_hold_hours",
        "hours",
        "For a resale: hours since the ticket's previous transaction strictly before t (how long the "
        "seller held it). −1 for primary sales or an unseen ticket.",
    ),
    FeatureSpec(
        "ticket_prior_transfers",
        "count",
        "Transactions of this ticket strictly before t (hops through the market).",
    ),
    FeatureSpec(
        "new_payment_method",
        "0/1",
        "1 if this transaction has a payment method the wallet never used strictly before t.",
    ),
    FeatureSpec(
        "new_ip_for_wallet",
        "0/1",
        "1 if this transaction has an IP address the wallet never used strictly before t.",
    ),
    FeatureSpec(
        "km_from_usual_location",
        "km",
        "Great-circle km from this transaction's location to the mean latitude/longitude of the "
        "wallet's located transactions strictly before t; −1 if either is unknown.",
    ),
    FeatureSpec(
        "km_from_event_crowd",
        "km",
        "Great-circle km from this transaction's location to the mean location of the event's located "
        "transactions strictly before t (where its buyers are); −1 if either is unknown.",
    ),
    FeatureSpec(
        "events_24h", "count", "Distinct events the buyer wallet bought tickets for in [t − 24 h, t)."
    ),
    FeatureSpec(
        "ip_txn_1h",
        "count",
        "Transactions from the same IP address, any wallet, in [t − 1 h, t). 0 without IP.",
    ),
)
HAND_FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)
BY_NAME = {spec.name: spec for spec in FEATURES}
# The default catalogue (default windows): what models are checked against unless the settings change it.
FEATURE_NAMES: tuple[str, ...] = HAND_FEATURE_NAMES  # completed below, once the families are planned

# Fields of the transaction being scored that `finish` reads.
QUERY_FIELDS = (
    "timestamp_s",
    "price_paid",
    "is_resale",
    "has_seller",
    "has_payment_method",
    "has_ticket",
    "has_ip",
    "latitude",
    "longitude",
)


# ---------------------------------------------------------------------------------------------- finishing
def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km between points in degrees (NaN in, NaN out)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _safe_div(num: np.ndarray, den: np.ndarray, fallback: float) -> np.ndarray:
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), fallback)


@dataclass(frozen=True)
class _WindowPlan:
    """One family window's primitive and feature names (strings formatted once per parameters)."""

    n: str
    spend: str
    sq: str
    max: str
    count_feature: str | None
    spend_feature: str | None
    mean_feature: str
    std_feature: str
    max_feature: str
    ratio_feature: str
    z_feature: str


@dataclass(frozen=True)
class _RiskPlan:
    rn: str
    rf: str
    rate_feature: str
    n_feature: str
    fraud_feature: str
    has: str  # the query field that says whether the transaction has the entity


@dataclass(frozen=True)
class _ReportedPlan:
    kn: str  # the entity's transactions in [t − w, t)
    kf: str  # the known frauds among them
    count_feature: str
    share_feature: str
    has: str  # the query field that says whether the transaction has the entity


_HAS_FIELD = {
    "wallet_address": "",
    "event_id": "",
    "seller_address": "has_seller",
    "ip_address": "has_ip",
    "payment_method": "has_payment_method",
}
# Below this share of the squared mean a window's variance is rounding, not spread: std 0.
_VAR_FLOOR = 1e-6
_Z_CLIP = 50.0


@lru_cache(maxsize=16)
def _family_plan(
    params: FeatureParams,
) -> tuple[tuple[_WindowPlan, ...], tuple[_RiskPlan, ...], tuple[_ReportedPlan, ...]]:
    windows: list[_WindowPlan] = []
    risks: list[_RiskPlan] = []
    reported: list[_ReportedPlan] = []
    for fam in FAMILIES:
        for window in params.windows:
            w = window_label(window)
            if fam.counts or fam.amounts:
                windows.append(
                    _WindowPlan(
                        n=f"{fam.key}_n_{w}",
                        spend=f"{fam.key}_spend_{w}",
                        sq=f"{fam.key}_sq_{w}",
                        max=f"{fam.key}_max_{w}",
                        count_feature=fam.count_name.format(name=fam.name, w=w) if fam.counts else None,
                        spend_feature=fam.spend_name.format(name=fam.name, w=w) if fam.amounts else None,
                        mean_feature=f"{fam.name}_amount_mean_{w}" if fam.amounts else "",
                        std_feature=f"{fam.name}_amount_std_{w}" if fam.amounts else "",
                        max_feature=f"{fam.name}_amount_max_{w}" if fam.amounts else "",
                        ratio_feature=f"amount_vs_{fam.name}_mean_{w}" if fam.amounts else "",
                        z_feature=f"amount_z_{fam.name}_{w}" if fam.amounts else "",
                    )
                )
        if fam.risk:
            for window in params.risk_windows:
                w = window_label(window)
                risks.append(
                    _RiskPlan(
                        f"{fam.key}_rn_{w}",
                        f"{fam.key}_rf_{w}",
                        f"{fam.name}_risk_{w}",
                        f"{fam.name}_risk_n_{w}",
                        f"{fam.name}_risk_fraud_{w}",
                        _HAS_FIELD[fam.column],
                    )
                )
            for window in params.reported_windows:
                w = window_label(window)
                reported.append(
                    _ReportedPlan(
                        f"{fam.key}_n_{w}",
                        f"{fam.key}_kf_{w}",
                        f"{fam.name}_fraud_reported_{w}",
                        f"{fam.name}_fraud_reported_share_{w}",
                        _HAS_FIELD[fam.column],
                    )
                )
    return tuple(windows), tuple(risks), tuple(reported)


def _families(
    p: Mapping[str, np.ndarray],
    q: Mapping[str, np.ndarray],
    params: FeatureParams,
    out: dict[str, np.ndarray],
) -> None:
    """The families' features (`Family`), vectorised."""
    price = q["price_paid"]
    out["amount"] = price
    windows, risks, reported = _family_plan(params)
    for wp in windows:
        n = p[wp.n]
        if wp.count_feature is not None:
            out.setdefault(wp.count_feature, n)
        if wp.spend_feature is None:
            continue
        spend = p[wp.spend]
        out.setdefault(wp.spend_feature, spend)
        some = n > 0
        mean = _safe_div(spend, n, 0.0)
        var = _safe_div(p[wp.sq], n, 0.0) - mean * mean
        std = np.sqrt(np.where(var > _VAR_FLOOR * mean * mean, var, 0.0))
        out[wp.mean_feature] = np.where(some, mean, MISSING)
        out[wp.std_feature] = np.where(some, std, MISSING)
        out[wp.max_feature] = np.where(some, np.nan_to_num(p[wp.max], nan=MISSING), MISSING)
        out[wp.ratio_feature] = np.where(some, _safe_div(price, mean, MISSING), MISSING)
        z = _safe_div(price - mean, std, 0.0)
        out[wp.z_feature] = np.where(n >= 2, np.clip(z, -_Z_CLIP, _Z_CLIP), 0.0)
    prior = _safe_div(p["g_rf"], p["g_rn"], 0.0)
    m = params.risk_prior_weight
    for rp in risks:
        rate = _safe_div(p[rp.rf] + m * prior, p[rp.rn] + m, 0.0)
        if rp.has:
            rate = np.where(q[rp.has].astype(bool), rate, MISSING)
        out[rp.rate_feature] = rate
        out[rp.n_feature] = p[rp.rn]
        out[rp.fraud_feature] = p[rp.rf]
    for fp in reported:
        share = _safe_div(p[fp.kf], p[fp.kn], 0.0)
        if fp.has:
            share = np.where(q[fp.has].astype(bool), share, MISSING)
        out[fp.count_feature] = p[fp.kf]
        out[fp.share_feature] = share


def _families_one(
    p: Mapping[str, float], q: Mapping[str, float], params: FeatureParams, out: dict[str, float]
) -> None:
    """`_families` for one transaction in plain floats (the same definitions line by line)."""
    price = q["price_paid"]
    out["amount"] = price
    windows, risks, reported = _family_plan(params)
    sqrt = math.sqrt
    for wp in windows:
        n = p[wp.n]
        if wp.count_feature is not None:
            out.setdefault(wp.count_feature, n)
        if wp.spend_feature is None:
            continue
        spend = p[wp.spend]
        out.setdefault(wp.spend_feature, spend)
        some = n > 0
        mean = _div(spend, n, 0.0)
        var = _div(p[wp.sq], n, 0.0) - mean * mean
        std = sqrt(var) if var > _VAR_FLOOR * mean * mean else 0.0
        top = p[wp.max]
        out[wp.mean_feature] = mean if some else MISSING
        out[wp.std_feature] = std if some else MISSING
        out[wp.max_feature] = (MISSING if top != top else _nan_to_num(top)) if some else MISSING
        out[wp.ratio_feature] = _div(price, mean, MISSING) if some else MISSING
        z = _div(price - mean, std, 0.0)
        out[wp.z_feature] = min(max(z, -_Z_CLIP), _Z_CLIP) if n >= 2 else 0.0
    prior = _div(p["g_rf"], p["g_rn"], 0.0)
    m = params.risk_prior_weight
    for rp in risks:
        rate = _div(p[rp.rf] + m * prior, p[rp.rn] + m, 0.0)
        if rp.has and not q[rp.has]:
            rate = MISSING
        out[rp.rate_feature] = rate
        out[rp.n_feature] = p[rp.rn]
        out[rp.fraud_feature] = p[rp.rf]
    for fp in reported:
        share = _div(p[fp.kf], p[fp.kn], 0.0)
        if fp.has and not q[fp.has]:
            share = MISSING
        out[fp.count_feature] = p[fp.kf]
        out[fp.share_feature] = share


def finish(
    p: Mapping[str, np.ndarray], q: Mapping[str, np.ndarray], params: FeatureParams
) -> dict[str, np.ndarray]:
    """Features from primitives ``p`` and the scored transactions' fields ``q`` (see QUERY_FIELDS).

    Arrays of one length; times are epoch seconds (float64) with NaN for "none".
    """
    t = q["timestamp_s"]
    price = q["price_paid"]
    resale = q["is_resale"].astype(bool)
    has_seller = q["has_seller"].astype(bool) & resale
    has_ticket = q["has_ticket"].astype(bool)

    first_seen = np.fmin(p["w_first_buy_ts"], p["w_first_sell_ts"])
    days_until = np.maximum((p["ev_starts_s"] - t) / DAY_S, MIN_DAYS_UNTIL_EVENT)
    popularity = _safe_div(p["e_sold"], p["ev_capacity"], 0.0) * days_until**-0.5
    popularity = np.where(np.isnan(p["ev_capacity"]) | np.isnan(p["ev_starts_s"]), 0.0, popularity)
    face = np.nan_to_num(p["ev_face_value"], nan=0.0)
    event_mean = _safe_div(p["e_spend_all"], p["e_n_all"], 0.0)
    reference = np.where(face > 0, face, event_mean)
    new_pm = q["has_payment_method"].astype(bool) & (p["w_pm_seen"] == 0)
    first_resale = np.fmin(p["k_first_resale_ts"], t)
    ticket_known = has_ticket & resale & ~np.isnan(p["k_first_ts"])
    geo = np.nan_to_num(p["geo_max_km"], nan=0.0) > params.geo_distance_km
    new_ip = q["has_ip"].astype(bool) & (p["w_ip_seen"] == 0)
    usual_lat = _safe_div(p["w_lat_sum"], p["w_located_n"], np.nan)
    usual_lon = _safe_div(p["w_lon_sum"], p["w_located_n"], np.nan)
    from_usual = haversine_km(q["latitude"], q["longitude"], usual_lat, usual_lon)
    crowd_lat = _safe_div(p["e_lat_sum"], p["e_located_n"], np.nan)
    crowd_lon = _safe_div(p["e_lon_sum"], p["e_located_n"], np.nan)
    from_crowd = haversine_km(q["latitude"], q["longitude"], crowd_lat, crowd_lon)

    out = {
        "txn_velocity_1h": p["w_n_1h"],
        "txn_velocity_24h": p["w_n_24h"],
        "spend_24h": p["w_spend_24h"],
        "seconds_since_last_txn": np.where(np.isnan(p["w_last_ts"]), MISSING, t - p["w_last_ts"]),
        "wallet_age_days": np.where(np.isnan(first_seen), 0.0, (t - first_seen) / DAY_S),
        "avg_ticket_hold_time": _safe_div(p["w_hold_sum_s"] / HOUR_S, p["w_hold_n"], MISSING),
        "event_popularity_score": popularity,
        "price_deviation_ratio": _safe_div(price - reference, reference, 0.0),
        "price_vs_wallet_mean": _safe_div(price, _safe_div(p["w_spend_all"], p["w_n_all"], 0.0), MISSING),
        "cross_event_attendance": p["w_events"],
        "geo_velocity_flag": geo.astype(np.float64),
        "payment_method_diversity": p["w_pms"] + new_pm,
        "social_graph_centrality": np.nan_to_num(p["centrality"], nan=0.0),
        "time_to_first_resale": np.where(ticket_known, (first_resale - p["k_first_ts"]) / 60.0, MISSING),
        "same_event_tickets_1h": p["we_n_1h"],
        "wallets_per_ip_24h": p["ip_wallets_24h"] - (p["ipw_n_24h"] > 0),
        "ticket_returns_to_owner": (has_ticket & (p["kw_n"] > 0)).astype(np.float64),
        "repeat_pair_count": np.where(has_seller, p["pair_n"], 0.0),
        "counterparty_blacklisted": np.where(has_seller, p["cp_blacklisted"] > 0, 0.0),
        "counterparty_known_fraud": np.where(has_seller, p["cp_known_fraud"] > 0, 0.0),
        "event_fraud_rate": _safe_div(p["e_risk_fraud"], p["e_risk_n"], 0.0),
        "seller_fraud_rate": np.where(has_seller, _safe_div(p["s_risk_fraud"], p["s_risk_n"], 0.0), 0.0),
        "is_resale": resale.astype(np.float64),
        "ticket_hold_hours": np.where(
            ticket_known & ~np.isnan(p["k_last_ts"]), (t - p["k_last_ts"]) / HOUR_S, MISSING
        ),
        "ticket_prior_transfers": np.where(has_ticket, p["k_n"], 0.0),
        "new_payment_method": new_pm.astype(np.float64),
        "new_ip_for_wallet": new_ip.astype(np.float64),
        "km_from_usual_location": np.where(np.isnan(from_usual), MISSING, from_usual),
        "km_from_event_crowd": np.where(np.isnan(from_crowd), MISSING, from_crowd),
        "events_24h": p["w_events_24h"],
        "ip_txn_1h": p["ip_n_1h"],
    }
    _families(p, q, params, out)
    return {name: np.asarray(out[name], dtype=np.float64) for name in feature_names(params)}


# ------------------------------------------------------------------------------------ finishing one row
# `finish` for a single transaction in plain floats: the online path's version (the numpy one spends
# ~0.4 ms on one-element arrays, this one ~0.04 ms). The same definitions line by line;
# tests/unit/test_features_finish.py holds the two equal on random and edge-case primitives (NaN, zeros,
# infinities), feature by feature. A change to one is a change to both.
_FLOAT_MAX = sys.float_info.max


def _nan_to_num(x: float) -> float:
    """np.nan_to_num: NaN → 0, ±inf → ±largest float."""
    if x != x:
        return 0.0
    if math.isinf(x):
        return _FLOAT_MAX if x > 0 else -_FLOAT_MAX
    return x


def _fmin(a: float, b: float) -> float:
    """np.fmin: the smaller, ignoring one NaN."""
    if a != a:
        return b
    if b != b:
        return a
    return a if a <= b else b


def _div(num: float, den: float, fallback: float) -> float:
    """`_safe_div` for one value."""
    return num / den if den > 0 else fallback


def _haversine_one(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """`haversine_km` for one pair (NaN or infinite in: NaN out, as numpy's sin of inf is NaN)."""
    isfinite = math.isfinite
    if not (isfinite(lat1) and isfinite(lon1) and isfinite(lat2) and isfinite(lon2)):
        return math.nan
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi = p2 - p1
    dlmb = math.radians(lon2) - math.radians(lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))


def finish_one(p: Mapping[str, float], q: Mapping[str, float], params: FeatureParams) -> dict[str, float]:
    """`finish` for one transaction: primitives ``p`` and the transaction's fields ``q`` as floats."""
    isnan = math.isnan
    t = q["timestamp_s"]
    price = q["price_paid"]
    resale = bool(q["is_resale"])
    has_seller = bool(q["has_seller"]) and resale
    has_ticket = bool(q["has_ticket"])

    first_seen = _fmin(p["w_first_buy_ts"], p["w_first_sell_ts"])
    days_until = (p["ev_starts_s"] - t) / DAY_S
    if not isnan(days_until):
        days_until = max(days_until, MIN_DAYS_UNTIL_EVENT)
    if isnan(p["ev_capacity"]) or isnan(p["ev_starts_s"]):
        popularity = 0.0
    else:
        popularity = _div(p["e_sold"], p["ev_capacity"], 0.0) * days_until**-0.5
    face = _nan_to_num(p["ev_face_value"])
    event_mean = _div(p["e_spend_all"], p["e_n_all"], 0.0)
    reference = face if face > 0 else event_mean
    new_pm = bool(q["has_payment_method"]) and p["w_pm_seen"] == 0
    first_resale = _fmin(p["k_first_resale_ts"], t)
    ticket_known = has_ticket and resale and not isnan(p["k_first_ts"])
    geo = _nan_to_num(p["geo_max_km"]) > params.geo_distance_km
    new_ip = bool(q["has_ip"]) and p["w_ip_seen"] == 0
    nan = math.nan
    from_usual = _haversine_one(
        q["latitude"],
        q["longitude"],
        _div(p["w_lat_sum"], p["w_located_n"], nan),
        _div(p["w_lon_sum"], p["w_located_n"], nan),
    )
    from_crowd = _haversine_one(
        q["latitude"],
        q["longitude"],
        _div(p["e_lat_sum"], p["e_located_n"], nan),
        _div(p["e_lon_sum"], p["e_located_n"], nan),
    )
    out = {
        "txn_velocity_1h": p["w_n_1h"],
        "txn_velocity_24h": p["w_n_24h"],
        "spend_24h": p["w_spend_24h"],
        "seconds_since_last_txn": MISSING if isnan(p["w_last_ts"]) else t - p["w_last_ts"],
        "wallet_age_days": 0.0 if isnan(first_seen) else (t - first_seen) / DAY_S,
        "avg_ticket_hold_time": _div(p["w_hold_sum_s"] / HOUR_S, p["w_hold_n"], MISSING),
        "event_popularity_score": popularity,
        "price_deviation_ratio": _div(price - reference, reference, 0.0),
        "price_vs_wallet_mean": _div(price, _div(p["w_spend_all"], p["w_n_all"], 0.0), MISSING),
        "cross_event_attendance": p["w_events"],
        "geo_velocity_flag": float(geo),
        "payment_method_diversity": p["w_pms"] + new_pm,
        "social_graph_centrality": _nan_to_num(p["centrality"]),
        "time_to_first_resale": (first_resale - p["k_first_ts"]) / 60.0 if ticket_known else MISSING,
        "same_event_tickets_1h": p["we_n_1h"],
        "wallets_per_ip_24h": p["ip_wallets_24h"] - (p["ipw_n_24h"] > 0),
        "ticket_returns_to_owner": float(has_ticket and p["kw_n"] > 0),
        "repeat_pair_count": p["pair_n"] if has_seller else 0.0,
        "counterparty_blacklisted": float(p["cp_blacklisted"] > 0) if has_seller else 0.0,
        "counterparty_known_fraud": float(p["cp_known_fraud"] > 0) if has_seller else 0.0,
        "event_fraud_rate": _div(p["e_risk_fraud"], p["e_risk_n"], 0.0),
        "seller_fraud_rate": _div(p["s_risk_fraud"], p["s_risk_n"], 0.0) if has_seller else 0.0,
        "is_resale": float(resale),
        "ticket_hold_hours": (t - p["k_last_ts"]) / HOUR_S
        if ticket_known and not isnan(p["k_last_ts"])
        else MISSING,
        "ticket_prior_transfers": p["k_n"] if has_ticket else 0.0,
        "new_payment_method": float(new_pm),
        "new_ip_for_wallet": float(new_ip),
        "km_from_usual_location": MISSING if isnan(from_usual) else from_usual,
        "km_from_event_crowd": MISSING if isnan(from_crowd) else from_crowd,
        "events_24h": p["w_events_24h"],
        "ip_txn_1h": p["ip_n_1h"],
    }
    _families_one(p, q, params, out)
    return {name: float(out[name]) for name in feature_names(params)}


def primitive_names(params: FeatureParams) -> tuple[str, ...]:
    return tuple(a.name for a in aggregates(params)) + SPECIAL_PRIMITIVES


FEATURE_NAMES = feature_names(FeatureParams())
