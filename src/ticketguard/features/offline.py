"""Offline execution of the feature catalogue: every transaction of a history, point-in-time, vectorised.

For each scored transaction only rows strictly before its timestamp count, and labels only when known
before it (see `ticketguard.features.specs`). Each primitive is one or two binary searches over arrays
sorted by (key, time) (`ticketguard.features.kernels`), so a million transactions take seconds, not a loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ticketguard.features import graph
from ticketguard.features.kernels import SortedIndex, range_max, stab_count
from ticketguard.features.specs import (
    Aggregate,
    FeatureParams,
    aggregates,
    finish,
    haversine_km,
)
from ticketguard.history import History
from ticketguard.wallets import is_canonical, wallet_key

US = 1_000_000
NEVER = np.iinfo(np.int64).max // 4  # "no upper end" that survives adding a window without overflowing

Progress = Callable[[str, float], None]

# Columns that share one code book: a seller is a wallet.
_VOCABULARY = {
    "wallet_address": "wallet",
    "seller_address": "wallet",
    "event_id": "event",
    "ticket_id": "ticket",
    "ip_address": "ip",
    "payment_method": "payment_method",
}


def to_us(series: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 microseconds since the epoch."""
    values = pd.to_datetime(series, utc=True).dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy().astype("datetime64[us]").astype(np.int64)


def _canonical_wallets(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every wallet column in the one canonical spelling (`ticketguard.wallets`), so two
    spellings of one wallet share its history. Checked once per distinct value; the frame itself is
    returned, not copied, when every value already is canonical (histories read from the database are)."""
    replaced: dict[str, pd.Series] = {}
    for column in ("wallet_address", "seller_address"):
        if column not in frame.columns:
            continue
        values = frame[column]
        distinct = values.dropna().unique()
        mapping = {v: wallet_key(v) if isinstance(v, str) else v for v in distinct if not is_canonical(v)}
        mapping = {k: v for k, v in mapping.items() if k != v}
        if mapping:
            replaced[column] = values.astype(object).map(lambda v, m=mapping: m.get(v, v))
    return frame.assign(**replaced) if replaced else frame


@dataclass
class _Frame:
    """Columns of a transaction frame as arrays: codes (−1 = null) for ids, µs for times."""

    n: int
    ts: np.ndarray
    codes: dict[str, np.ndarray]
    price: np.ndarray
    is_resale: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    is_fraud: np.ndarray
    labelled_us: np.ndarray


def _encode(
    items: pd.DataFrame, queries: pd.DataFrame
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, int]]:
    item_codes: dict[str, np.ndarray] = {}
    query_codes: dict[str, np.ndarray] = {}
    sizes: dict[str, int] = {}
    for book in sorted(set(_VOCABULARY.values())):
        columns = [c for c, b in _VOCABULARY.items() if b == book]
        parts = [items[c] for c in columns] + [queries[c] for c in columns]
        stacked = pd.concat(parts, ignore_index=True).astype(object)
        codes, uniques = pd.factorize(stacked, use_na_sentinel=True)
        sizes[book] = len(uniques)
        # `parts` stacks every item column, then every query column.
        start = 0
        for c in columns:
            item_codes[c] = codes[start : start + len(items)].astype(np.int64)
            start += len(items)
        for c in columns:
            query_codes[c] = codes[start : start + len(queries)].astype(np.int64)
            start += len(queries)
    return item_codes, query_codes, sizes


def _frame(tx: pd.DataFrame, codes: dict[str, np.ndarray], labels: pd.DataFrame | None) -> _Frame:
    n = len(tx)
    is_fraud = np.zeros(n, dtype=bool)
    labelled = np.full(n, NEVER, dtype=np.int64)
    if labels is not None and len(labels):
        joined = tx[["transaction_id"]].merge(
            labels[["transaction_id", "is_fraud", "labelled_at"]].drop_duplicates(
                "transaction_id", keep="last"
            ),
            on="transaction_id",
            how="left",
        )
        is_fraud = joined["is_fraud"].fillna(False).astype(bool).to_numpy()
        known = joined["labelled_at"].notna().to_numpy()
        if known.any():
            labelled[known] = to_us(joined.loc[known, "labelled_at"])
    return _Frame(
        n=n,
        ts=to_us(tx["timestamp"]) if n else np.zeros(0, np.int64),
        codes=codes,
        price=pd.to_numeric(tx["price_paid"], errors="coerce").to_numpy(dtype=np.float64),
        is_resale=tx["is_resale"].fillna(False).astype(bool).to_numpy(),
        lat=pd.to_numeric(tx["latitude"], errors="coerce").to_numpy(dtype=np.float64),
        lon=pd.to_numeric(tx["longitude"], errors="coerce").to_numpy(dtype=np.float64),
        is_fraud=is_fraud,
        labelled_us=labelled,
    )


def _key(codes: dict[str, np.ndarray], columns: tuple[str, ...], sizes: dict[str, int]) -> np.ndarray:
    """One int64 code for a tuple of columns; −1 when any part is null; 0 for every row without columns
    (a global aggregate)."""
    if not columns:
        return np.zeros(len(codes["wallet_address"]), dtype=np.int64)
    key = codes[columns[0]].copy()
    null = key < 0
    for c in columns[1:]:
        part = codes[c]
        null |= part < 0
        key = key * np.int64(sizes[_VOCABULARY[c]] + 1) + part
    key[null] = -1
    return key


class OfflineFeatures:
    """Compute the catalogue for ``queries`` from the history ``items`` (by default the history itself)."""

    def __init__(self, params: FeatureParams | None = None) -> None:
        self.params = params or FeatureParams()

    def compute(
        self,
        history: History,
        queries: pd.DataFrame | None = None,
        *,
        blacklist: pd.DataFrame | None = None,
        progress: Progress | None = None,
    ) -> pd.DataFrame:
        """Features for every row of ``queries`` (default: the history's transactions), in their order."""
        report = progress or (lambda _stage, _fraction: None)
        prims, fields = self.primitives(history, queries, blacklist=blacklist, progress=report)
        features = finish(prims, fields, self.params)
        report("features: done", 1.0)
        index = history.transactions.index if queries is None else queries.index
        return pd.DataFrame(features, index=index)

    def primitives(
        self,
        history: History,
        queries: pd.DataFrame | None = None,
        *,
        blacklist: pd.DataFrame | None = None,
        progress: Progress | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The primitives and query fields `specs.finish` takes, one array element per query row."""
        report = progress or (lambda _stage, _fraction: None)
        items_df = _canonical_wallets(history.transactions)
        queries_df = items_df if queries is None else _canonical_wallets(queries)
        if blacklist is not None:
            blacklist = _canonical_wallets(blacklist)
        item_codes, query_codes, sizes = _encode(items_df, queries_df)
        items = _frame(items_df, item_codes, history.labels)
        q = _frame(queries_df, query_codes, None)
        prims: dict[str, np.ndarray] = {}
        declared = aggregates(self.params)
        for i, agg in enumerate(declared):
            prims[agg.name] = self._aggregate(agg, items, q, sizes)
            report(f"features: {agg.name}", 0.8 * (i + 1) / len(declared))
        prims.update(self._hold(items, q))
        prims["pair_n"] = self._pairs(items, q, sizes)
        prims["geo_max_km"] = self._geo(items, q)
        report("features: geo velocity", 0.85)
        prims["cp_known_fraud"] = self._known_fraud_counterparty(items, q)
        prims["cp_blacklisted"] = self._blacklisted(blacklist, queries_df, q)
        prims["centrality"] = self._centrality(items, q)
        report("features: graph centrality", 0.95)
        prims.update(self._event_facts(history.events, queries_df))
        fields = {
            "timestamp_s": q.ts / US,
            "price_paid": q.price,
            "is_resale": q.is_resale,
            "has_seller": q.codes["seller_address"] >= 0,
            "has_payment_method": q.codes["payment_method"] >= 0,
            "has_ticket": q.codes["ticket_id"] >= 0,
            "has_ip": q.codes["ip_address"] >= 0,
            "latitude": q.lat,
            "longitude": q.lon,
        }
        return prims, fields

    # ------------------------------------------------------------------------------------ generic
    def _aggregate(self, agg: Aggregate, items: _Frame, q: _Frame, sizes: dict[str, int]) -> np.ndarray:
        ig = _key(items.codes, agg.item_columns, sizes)
        qg = _key(q.codes, agg.query_columns, sizes)
        keep = ig >= 0
        if agg.rows == "primary":
            keep &= ~items.is_resale
        elif agg.rows == "resale":
            keep &= items.is_resale
        elif agg.rows == "known_fraud":
            keep &= items.is_fraud
        elif agg.rows == "located":
            keep &= ~np.isnan(items.lat) & ~np.isnan(items.lon)
        numeric = {"price_paid": items.price, "latitude": items.lat, "longitude": items.lon}
        if agg.agg in ("sum", "sumsq", "max", "distinct") and agg.value is not None:
            if agg.value in numeric:
                keep &= ~np.isnan(numeric[agg.value])
            else:
                keep &= items.codes[agg.value] >= 0
        asked = qg >= 0
        out = np.full(q.n, np.nan if agg.agg in ("min_time", "max_time") else 0.0)
        if not asked.any() or not keep.any():
            return out
        qg_a, t = qg[asked], q.ts[asked]
        ts = items.ts[keep]
        g = ig[keep]
        offset = int(agg.offset.total_seconds() * US)
        width = None if agg.window is None else int(agg.window.total_seconds() * US)

        if agg.agg == "distinct":
            assert offset == 0
            assert agg.value is not None
            out[asked] = self._distinct(g, items.codes[agg.value][keep], ts, width, qg_a, t)
            return out
        if agg.rows == "known_fraud":
            # Counted while t − offset − window <= ts < t − offset and labelled_at < t: on (L, R].
            lower = np.maximum(ts + offset, items.labelled_us[keep])
            upper = None if width is None else ts + offset + width
            out[asked] = stab_count(g, lower, upper, qg_a, t)
            return out
        weights = None
        if agg.agg in ("sum", "sumsq", "max") and agg.value is not None:
            weights = numeric[agg.value][keep]
            if agg.agg == "sumsq":
                weights = weights * weights
        index = SortedIndex(g, ts, None if agg.agg == "max" else weights)
        hi = index.before(qg_a, t - offset)
        lo = index.group_start(qg_a) if width is None else index.before(qg_a, t - offset - width)
        if agg.agg == "count":
            out[asked] = hi - lo
        elif agg.agg in ("sum", "sumsq"):
            out[asked] = index.weight_between(lo, hi)
        elif agg.agg == "max":
            assert weights is not None
            out[asked] = range_max(weights[index.order], lo, hi)
        else:
            assert width is None, "min/max time are over all history"
            assert offset == 0, "min/max time are over all history"
            start = index.group_start(qg_a)
            some = hi > start
            values = np.full(len(qg_a), np.nan)
            pick = start if agg.agg == "min_time" else hi - 1
            values[some] = index.values[pick[some]] / US
            out[asked] = values
        return out

    @staticmethod
    def _distinct(
        g: np.ndarray,
        value: np.ndarray,
        ts: np.ndarray,
        width: int | None,
        qg: np.ndarray,
        t: np.ndarray,
    ) -> np.ndarray:
        """Distinct values per group among items in [t − width, t) (or all before t)."""
        order = np.lexsort((ts, value, g))
        value_s, ts_s, g_s = value[order], ts[order], g[order]
        first = np.ones(len(value_s), dtype=bool)
        first[1:] = (value_s[1:] != value_s[:-1]) | (g_s[1:] != g_s[:-1])
        if width is None:
            # A pair counts from its first occurrence on.
            return SortedIndex(g_s[first], ts_s[first]).count_below(qg, t)
        # An occurrence is "the first of its pair in the window" for t in (max(prev + w, ts), ts + w].
        prev = np.empty_like(ts_s)
        prev[1:] = ts_s[:-1]
        lower = np.where(first, ts_s, np.maximum(prev + width, ts_s))
        return stab_count(g_s, lower, ts_s + width, qg, t)

    # ------------------------------------------------------------------------------------ special
    @staticmethod
    def _ticket_previous(items: _Frame) -> np.ndarray:
        """For each item, the time of its ticket's latest transaction strictly before it (µs), or −1."""
        tk = items.codes["ticket_id"]
        has = tk >= 0
        prev = np.full(items.n, -1, dtype=np.int64)
        if not has.any():
            return prev
        index = SortedIndex(tk[has], items.ts[has])
        pos = index.before(tk[has], items.ts[has])
        start = index.group_start(tk[has])
        some = pos > start
        found = np.full(int(has.sum()), -1, dtype=np.int64)
        found[some] = index.values[pos[some] - 1]
        prev[has] = found
        return prev

    def _hold(self, items: _Frame, q: _Frame) -> dict[str, np.ndarray]:
        prev = self._ticket_previous(items)
        seller = items.codes["seller_address"]
        keep = (seller >= 0) & (prev >= 0)
        held_s = (items.ts[keep] - prev[keep]) / US
        qg = q.codes["wallet_address"]
        asked = qg >= 0
        n = np.zeros(q.n)
        total = np.zeros(q.n)
        if keep.any() and asked.any():
            index = SortedIndex(seller[keep], items.ts[keep], held_s)
            hi = index.before(qg[asked], q.ts[asked])
            lo = index.group_start(qg[asked])
            n[asked] = hi - lo
            total[asked] = index.weight_between(lo, hi)
        return {"w_hold_n": n, "w_hold_sum_s": total}

    @staticmethod
    def _pair_key(a: np.ndarray, b: np.ndarray, size: int) -> np.ndarray:
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        key = lo * np.int64(size + 1) + hi
        key[(a < 0) | (b < 0)] = -1
        return key

    def _pairs(self, items: _Frame, q: _Frame, sizes: dict[str, int]) -> np.ndarray:
        size = sizes["wallet"]
        ig = self._pair_key(items.codes["wallet_address"], items.codes["seller_address"], size)
        qg = self._pair_key(q.codes["wallet_address"], q.codes["seller_address"], size)
        out = np.zeros(q.n)
        keep, asked = ig >= 0, qg >= 0
        if keep.any() and asked.any():
            out[asked] = SortedIndex(ig[keep], items.ts[keep]).count_below(qg[asked], q.ts[asked])
        return out

    def _geo(self, items: _Frame, q: _Frame) -> np.ndarray:
        located = (items.codes["wallet_address"] >= 0) & ~np.isnan(items.lat) & ~np.isnan(items.lon)
        asked = (q.codes["wallet_address"] >= 0) & ~np.isnan(q.lat) & ~np.isnan(q.lon)
        out = np.full(q.n, np.nan)
        if not located.any() or not asked.any():
            return out
        index = SortedIndex(items.codes["wallet_address"][located], items.ts[located])
        lat_s, lon_s = items.lat[located][index.order], items.lon[located][index.order]
        qi = np.flatnonzero(asked)
        width = int(self.params.geo_window.total_seconds() * US)
        hi = index.before(q.codes["wallet_address"][qi], q.ts[qi])
        lo = index.before(q.codes["wallet_address"][qi], q.ts[qi] - width)
        counts = hi - lo
        has = counts > 0
        qi, lo, counts = qi[has], lo[has], counts[has]
        if len(qi) == 0:
            return out
        # Expand (query, item-in-window) pairs; windows of an hour hold a handful of rows per wallet.
        owner = np.repeat(np.arange(len(qi)), counts)
        within = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
        item = np.repeat(lo, counts) + within
        dist = haversine_km(q.lat[qi][owner], q.lon[qi][owner], lat_s[item], lon_s[item])
        starts = np.cumsum(counts) - counts
        out[qi] = np.maximum.reduceat(dist, starts)
        return out

    @staticmethod
    def _known_fraud_counterparty(items: _Frame, q: _Frame) -> np.ndarray:
        fraud = items.is_fraud
        known_at = np.maximum(items.ts, items.labelled_us)[fraud]
        groups = np.concatenate([items.codes["wallet_address"][fraud], items.codes["seller_address"][fraud]])
        times = np.concatenate([known_at, known_at])
        keep = groups >= 0
        qg = q.codes["seller_address"]
        asked = qg >= 0
        out = np.zeros(q.n)
        if keep.any() and asked.any():
            out[asked] = SortedIndex(groups[keep], times[keep]).count_below(qg[asked], q.ts[asked])
        return out

    @staticmethod
    def _blacklisted(blacklist: pd.DataFrame | None, queries: pd.DataFrame, q: _Frame) -> np.ndarray:
        out = np.zeros(q.n)
        if blacklist is None or blacklist.empty:
            return out
        sellers = queries["seller_address"].astype(object)
        asked = sellers.notna().to_numpy()
        if not asked.any():
            return out
        codes, _uniques = pd.factorize(
            pd.concat([blacklist["wallet_address"].astype(object), sellers[asked]], ignore_index=True)
        )
        listed_codes, query_codes = codes[: len(blacklist)], codes[len(blacklist) :]
        added = to_us(blacklist["timestamp"])
        expires = blacklist["expires_at"]
        upper = np.full(len(blacklist), NEVER, dtype=np.int64)
        if expires.notna().any():
            upper[expires.notna().to_numpy()] = to_us(expires[expires.notna()])
        # Listed on (added, expires): strictly after it was added, before it expires.
        out[asked] = stab_count(listed_codes, added, upper, query_codes, q.ts[asked], upper_inclusive=False)
        return out

    def _centrality(self, items: _Frame, q: _Frame) -> np.ndarray:
        seller, buyer = items.codes["seller_address"], items.codes["wallet_address"]
        transfer = (seller >= 0) & (buyer >= 0)
        out = np.zeros(q.n)
        asked = q.codes["wallet_address"] >= 0
        if not transfer.any() or not asked.any():
            return out
        days = q.ts // graph.DAY_US
        snaps = graph.snapshots_for_days(
            items.ts[transfer],
            seller[transfer],
            buyer[transfer],
            days[asked],
            damping=self.params.pagerank_damping,
            tolerance=self.params.pagerank_tolerance,
            max_iter=self.params.pagerank_max_iter,
        )
        wallet = q.codes["wallet_address"]
        for day, snap in snaps.items():
            rows = asked & (days == day)
            out[rows] = snap.lookup(wallet[rows])
        return out

    @staticmethod
    def _event_facts(events: pd.DataFrame, queries: pd.DataFrame) -> dict[str, np.ndarray]:
        n = len(queries)
        if "facts_derived" in events.columns:  # derived from a whole import: unknown at t (issue 13)
            events = events[~events["facts_derived"].fillna(False).astype(bool)]
        if events.empty:
            nan = np.full(n, np.nan)
            return {"ev_capacity": nan, "ev_face_value": nan.copy(), "ev_starts_s": nan.copy()}
        ev = events.drop_duplicates("event_id", keep="last").set_index("event_id")
        idx = ev.index.get_indexer(pd.Index(queries["event_id"].astype(object)))
        found = idx >= 0
        take = np.where(found, idx, 0)

        def column(values: np.ndarray) -> np.ndarray:
            return np.where(found, values[take], np.nan)

        starts = ev["starts_at"]
        starts_s = np.where(starts.notna(), to_us(starts.fillna(pd.Timestamp(0, tz="UTC"))) / US, np.nan)
        return {
            "ev_capacity": column(pd.to_numeric(ev["capacity"], errors="coerce").to_numpy(dtype=np.float64)),
            "ev_face_value": column(
                pd.to_numeric(ev["face_value"], errors="coerce").to_numpy(dtype=np.float64)
            ),
            "ev_starts_s": column(np.asarray(starts_s, dtype=np.float64)),
        }


def build_features(
    history: History,
    params: FeatureParams | None = None,
    *,
    blacklist: pd.DataFrame | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Point-in-time features of every transaction of ``history``, in its row order."""
    return OfflineFeatures(params).compute(history, blacklist=blacklist, progress=progress)
