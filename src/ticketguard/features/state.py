"""In-memory online feature state: every primitive of the catalogue from per-key indexes, incrementally.

The scoring path's third execution of `ticketguard.features.specs` (after the offline arrays and the SQL of
`features.repository`), and the fast one: no database read per request. It holds

* every transaction as a compact `Row`, indexed by buyer wallet, seller, IP, event, ticket and buyer–seller
  pair, each index's rows kept sorted by time (`add` appends; a late row is inserted in place);
* running all-history totals per wallet and per event (counts, spend, located sums, distinct events,
  payment methods and IPs), so an aggregate over a hot event or a busy wallet costs O(1), not O(rows);
* the slowly changing inputs, replaced whole by their owner (`set_labels`, `set_events`, `set_blacklist`,
  `set_centrality`): fraud labels with the time they became known, the event catalogue, the blacklist and
  the latest wallet-graph snapshot.

Semantics are those of the other executions, exactly: a primitive at time ``t`` sees rows *strictly before*
``t`` (all-history totals subtract the rows at or after ``t``, found at the end of the sorted index), labels
only once ``labelled_at < t``; times are integer microseconds internally, so window edges compare exactly.
The parity tests (tests/integration/test_feature_state.py) hold `primitives` equal to `SqlFeatureSource` on
simulated histories, on SQLite and PostgreSQL.

Pure Python, not thread-safe: `ticketguard.scoring.online.StateKeeper` owns an instance behind a lock and
keeps it in step with the database and the other API workers.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ticketguard.features.specs import EARTH_RADIUS_KM, FAMILIES, FeatureParams, window_label

US = 1_000_000
NAN = float("nan")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(value: datetime) -> int:
    """Epoch microseconds of an aware datetime (exact integer arithmetic)."""
    delta = value.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


class Facts(Protocol):
    """What `primitives` reads of the transaction being scored (`features.repository.TransactionFacts`)."""

    wallet_address: str
    event_id: str
    timestamp: datetime
    ticket_id: str | None
    payment_method: str | None
    seller_address: str | None
    ip_address: str | None
    latitude: float | None
    longitude: float | None


class Row:
    """One past transaction as the features see it (times in µs, price 0.0 when unknown)."""

    __slots__ = (
        "event",
        "ip",
        "lat",
        "lon",
        "pm",
        "price",
        "priced",
        "resale",
        "seller",
        "ticket",
        "tid",
        "ts",
        "wallet",
    )

    def __init__(
        self,
        tid: str,
        ts: int,
        wallet: str,
        event: str,
        ticket: str | None,
        price: float | None,
        pm: str | None,
        resale: bool,
        seller: str | None,
        ip: str | None,
        lat: float | None,
        lon: float | None,
    ) -> None:
        self.tid = tid
        self.ts = ts
        self.wallet = wallet
        self.event = event
        self.ticket = ticket
        self.priced = price is not None and not math.isnan(price)
        self.price = float(price) if self.priced and price is not None else 0.0
        self.pm = pm
        self.resale = bool(resale)
        self.seller = seller
        self.ip = ip
        located = lat is not None and lon is not None and not (math.isnan(lat) or math.isnan(lon))
        self.lat = float(lat) if located and lat is not None else None
        self.lon = float(lon) if located and lon is not None else None

    @property
    def located(self) -> bool:
        return self.lat is not None

    def as_list(self) -> list[Any]:
        """The wire form (`from_list` reverses it): what the API workers publish to each other."""
        return [
            self.tid,
            self.ts,
            self.wallet,
            self.event,
            self.ticket,
            self.price if self.priced else None,
            self.pm,
            self.resale,
            self.seller,
            self.ip,
            self.lat,
            self.lon,
        ]

    @classmethod
    def from_list(cls, v: list[Any]) -> Row:
        """From `as_list` (the change feed); the repeating strings interned, as the database loader does."""

        def i(x: str | None) -> str | None:
            return None if x is None else sys.intern(x)

        intern = sys.intern
        return cls(
            v[0],
            int(v[1]),
            intern(v[2]),
            intern(v[3]),
            i(v[4]),
            v[5],
            i(v[6]),
            bool(v[7]),
            i(v[8]),
            i(v[9]),
            v[10],
            v[11],
        )


def _ts(row: Row) -> int:
    return row.ts


def _insert(rows: list[Row], row: Row) -> None:
    if not rows or rows[-1].ts <= row.ts:
        rows.append(row)
    else:
        insort(rows, row, key=_ts)


def _tail(rows: list[Row], t: int) -> Iterator[Row]:
    """Rows at or after ``t`` (newest first): what all-history totals must not count at ``t``."""
    for i in range(len(rows) - 1, -1, -1):
        row = rows[i]
        if row.ts < t:
            return
        yield row


def _window(rows: list[Row], lo: int, hi: int) -> Iterator[Row]:
    """Rows with lo <= ts < hi, newest first (rows are sorted; windows are at the recent end)."""
    for i in range(len(rows) - 1, -1, -1):
        row = rows[i]
        if row.ts >= hi:
            continue
        if row.ts < lo:
            return
        yield row


def _insert_time(times: list[int] | array[int], ts: int) -> None:
    if times and times[-1] > ts:
        insort(times, ts)
    else:
        times.append(ts)


def _count_between(times: list[int], lo: int, hi: int) -> int:
    return bisect_left(times, hi) - bisect_left(times, lo)


@dataclass
class _WalletTotals:
    n: int = 0
    spend: float = 0.0
    located: int = 0
    lat: float = 0.0
    lon: float = 0.0
    events: Counter[str] = field(default_factory=Counter)
    pms: Counter[str] = field(default_factory=Counter)
    ips: Counter[str] = field(default_factory=Counter)


@dataclass
class _EventTotals:
    n: int = 0
    spend: float = 0.0
    sold: int = 0
    located: int = 0
    lat: float = 0.0
    lon: float = 0.0
    times: list[int] = field(default_factory=list)  # every row's time, sorted (risk windows by bisect)


@dataclass(frozen=True)
class EventFacts:
    capacity: float
    face_value: float
    starts_s: float


@dataclass(frozen=True)
class FraudLabel:
    """A transaction labelled fraud, with where it sits in the indexes and when the label became known."""

    tid: str
    ts: int
    labelled_us: int
    wallet: str
    event: str
    seller: str | None
    ip: str | None = None
    pm: str | None = None


class _Labels:
    """One key's fraud labels sorted by transaction time (``ts``), for window counts by bisection."""

    __slots__ = ("labels", "times")

    def __init__(self, labels: list[FraudLabel]) -> None:
        labels.sort(key=lambda f: f.ts)
        self.labels = labels
        self.times = [f.ts for f in labels]

    def known(self, lo: int, hi: int, t: int, all_known_before: int) -> int:
        """Labels of transactions in [lo, hi) known before t (every label is when t > all_known_before)."""
        i = bisect_left(self.times, lo)
        j = bisect_left(self.times, hi, i)
        if t > all_known_before:
            return j - i
        return sum(1 for k in range(i, j) if self.labels[k].labelled_us < t)


class FeatureState:
    """Per-key indexes of the transaction history; ``primitives(txn)`` as `SqlFeatureSource` reads them."""

    def __init__(self, params: FeatureParams) -> None:
        self.params = params
        self.rows = 0
        self.by_wallet: dict[str, list[Row]] = {}
        self.by_seller: dict[str, list[Row]] = {}
        self.by_ip: dict[str, list[Row]] = {}
        self.by_event: dict[str, list[Row]] = {}
        self.by_ticket: dict[str, list[Row]] = {}
        self.by_pair: dict[tuple[str, str], list[int]] = {}
        self.wallet_totals: dict[str, _WalletTotals] = {}
        self.event_totals: dict[str, _EventTotals] = {}
        self.seller_times: dict[str, list[int]] = {}
        # Replaced whole by their owners.
        self.events: dict[str, EventFacts] = {}
        self.blacklist: dict[str, list[tuple[int, int | None]]] = {}  # wallet → (added µs, expires µs)
        self.centrality: dict[str, float] = {}
        self.centrality_at: int | None = None  # the snapshot's time (µs); None: no snapshot
        self._fraud_by_event: dict[str, list[FraudLabel]] = {}
        self._fraud_by_seller: dict[str, list[FraudLabel]] = {}
        self._fraud_by_party: dict[str, list[FraudLabel]] = {}
        # The feature families (`specs.FAMILIES`): time indexes the windows count by bisection, and fraud
        # labels per family column (plus "" for all transactions), sorted by transaction time.
        self.pm_times: dict[str, array[int]] = {}
        self.all_times: array[int] = array("q")
        self._family_labels: dict[str, dict[str, _Labels]] = {}
        self._labels_known_by = -(2**62)  # every label is known at any t after this
        self._windows = tuple((window_label(w), int(w.total_seconds() * US)) for w in sorted(params.windows))
        self._risk_windows = tuple(
            (window_label(w), int(w.total_seconds() * US)) for w in params.risk_windows
        )
        self._reported_windows = tuple(
            (window_label(w), int(w.total_seconds() * US)) for w in params.reported_windows
        )
        self._widest_risk = int(max(params.risk_windows).total_seconds() * US)
        self._us = {
            "hour": int(3600 * US),
            "day": int(86400 * US),
            "geo": int(params.geo_window.total_seconds() * US),
            "delay": int(params.label_delay.total_seconds() * US),
            "risk": int(params.risk_window.total_seconds() * US),
        }

    # ------------------------------------------------------------------------------------------ writes
    def add(self, row: Row) -> None:
        """Index one transaction (any order; rows equal in time keep their arrival order)."""
        self.rows += 1
        _insert(self.by_wallet.setdefault(row.wallet, []), row)
        w = self.wallet_totals.get(row.wallet)
        if w is None:
            w = self.wallet_totals[row.wallet] = _WalletTotals()
        w.n += 1
        w.spend += row.price
        w.events[row.event] += 1
        if row.pm is not None:
            w.pms[row.pm] += 1
        if row.ip is not None:
            w.ips[row.ip] += 1
            _insert(self.by_ip.setdefault(row.ip, []), row)
        if row.lat is not None and row.lon is not None:
            w.located += 1
            w.lat += row.lat
            w.lon += row.lon
        _insert(self.by_event.setdefault(row.event, []), row)
        e = self.event_totals.get(row.event)
        if e is None:
            e = self.event_totals[row.event] = _EventTotals()
        e.n += 1
        e.spend += row.price
        if not row.resale:
            e.sold += 1
        if row.lat is not None and row.lon is not None:
            e.located += 1
            e.lat += row.lat
            e.lon += row.lon
        _insert_time(e.times, row.ts)
        if row.ticket is not None:
            _insert(self.by_ticket.setdefault(row.ticket, []), row)
        if row.pm is not None:
            times = self.pm_times.get(row.pm)
            if times is None:
                times = self.pm_times[row.pm] = array("q")
            _insert_time(times, row.ts)
        _insert_time(self.all_times, row.ts)
        if row.seller is not None:
            _insert(self.by_seller.setdefault(row.seller, []), row)
            _insert_time(self.seller_times.setdefault(row.seller, []), row.ts)
            _insert_time(self.by_pair.setdefault(_pair(row.wallet, row.seller), []), row.ts)

    def add_all(self, rows: Iterable[Row]) -> int:
        n = 0
        for row in rows:
            self.add(row)
            n += 1
        return n

    def has(self, tid: str, wallet: str) -> bool:
        """Whether this transaction is indexed (looked up among its buyer's rows, newest first)."""
        rows = self.by_wallet.get(wallet, ())
        return any(row.tid == tid for row in reversed(rows))

    def set_events(self, events: Mapping[str, EventFacts]) -> None:
        self.events = dict(events)

    def set_blacklist(self, entries: Mapping[str, list[tuple[int, int | None]]]) -> None:
        self.blacklist = {k: list(v) for k, v in entries.items()}

    def set_centrality(self, snapshot_us: int | None, scores: Mapping[str, float]) -> None:
        self.centrality_at = snapshot_us
        self.centrality = dict(scores)

    def set_labels(self, labels: Iterable[FraudLabel]) -> None:
        """Replace the known fraud labels (rows labelled fraud, each with ``labelled_us``)."""
        by_event: dict[str, list[FraudLabel]] = {}
        by_seller: dict[str, list[FraudLabel]] = {}
        by_party: dict[str, list[FraudLabel]] = {}
        for label in labels:
            by_event.setdefault(label.event, []).append(label)
            by_party.setdefault(label.wallet, []).append(label)
            if label.seller is not None:
                by_seller.setdefault(label.seller, []).append(label)
                if label.seller != label.wallet:
                    by_party.setdefault(label.seller, []).append(label)
        self._fraud_by_event, self._fraud_by_seller, self._fraud_by_party = by_event, by_seller, by_party
        grouped: dict[str, dict[str, list[FraudLabel]]] = {c: {} for c in _FAMILY_LABEL_KEYS}
        known_by = -(2**62)
        for label in [f for fs in by_event.values() for f in fs]:
            known_by = max(known_by, label.labelled_us)
            for column, attribute in _FAMILY_LABEL_KEYS.items():
                key = getattr(label, attribute) if attribute else ""
                if key is not None:
                    grouped[column].setdefault(key, []).append(label)
        self._family_labels = {c: {k: _Labels(v) for k, v in g.items()} for c, g in grouped.items()}
        self._labels_known_by = known_by

    def take_labels(self, other: FeatureState) -> None:
        """Use ``other``'s label indexes (a refresh read them into a scratch state)."""
        self._fraud_by_event = other._fraud_by_event
        self._fraud_by_seller = other._fraud_by_seller
        self._fraud_by_party = other._fraud_by_party
        self._family_labels = other._family_labels
        self._labels_known_by = other._labels_known_by

    # ------------------------------------------------------------------------------------------ reads
    def primitives(self, txn: Facts) -> dict[str, float]:
        """Every primitive `specs.finish` needs for ``txn`` at ``txn.timestamp``."""
        t = to_us(txn.timestamp)
        out: dict[str, float] = {}
        self._wallet(out, txn, t)
        self._ip(out, txn.ip_address, txn.wallet_address, t)
        self._event(out, txn.event_id, t)
        self._ticket(out, txn.ticket_id, txn.wallet_address, t)
        self._seller(out, txn.seller_address, t)
        out["pair_n"] = self._pair_n(txn.wallet_address, txn.seller_address, t)
        out["geo_max_km"] = self._geo(txn, t)
        out["w_first_sell_ts"] = self._first_sell(txn.wallet_address, t)
        out["w_hold_n"], out["w_hold_sum_s"] = self._hold(txn.wallet_address, t)
        out["centrality"] = (
            self.centrality.get(txn.wallet_address, NAN)
            if self.centrality_at is not None and self.centrality_at <= t
            else NAN
        )
        facts = self.events.get(txn.event_id)
        out["ev_capacity"] = facts.capacity if facts else NAN
        out["ev_face_value"] = facts.face_value if facts else NAN
        out["ev_starts_s"] = facts.starts_s if facts else NAN
        self._families(out, txn, t)
        return out

    # ------------------------------------------------------------------------------------------ families
    def _times(self, column: str, key: str | None) -> tuple[Any, bool]:
        """The sorted times of ``key``'s transactions for a family column, and whether they are `Row`s."""
        if key is None:
            return (), False
        if column == "wallet_address":
            return self.by_wallet.get(key, ()), True
        if column == "event_id":
            totals = self.event_totals.get(key)
            return (totals.times if totals else ()), False
        if column == "seller_address":
            return self.seller_times.get(key, ()), False
        if column == "ip_address":
            return self.by_ip.get(key, ()), True
        if column == "payment_method":
            return self.pm_times.get(key, ()), False
        raise ValueError(f"no time index for feature family column {column!r}")

    def _families(self, out: dict[str, float], txn: Facts, t: int) -> None:
        """The primitives of `specs.FAMILIES` (`specs.family_aggregates`)."""
        delay = self._us["delay"]
        known_by = self._labels_known_by
        for fam in FAMILIES:
            key = getattr(txn, fam.column)
            times, rows = self._times(fam.column, key)
            if fam.amounts:
                self._amounts(out, fam.key, times, t)
            elif fam.counts:
                for w, width in self._windows:
                    out[f"{fam.key}_n_{w}"] = float(_count(times, t - width, t, rows))
            if fam.risk:
                labels = self._family_labels.get(fam.column, {}).get(key) if key is not None else None
                hi = t - delay
                for w, width in self._risk_windows:
                    out[f"{fam.key}_rn_{w}"] = float(_count(times, hi - width, hi, rows))
                    out[f"{fam.key}_rf_{w}"] = (
                        float(labels.known(hi - width, hi, t, known_by)) if labels is not None else 0.0
                    )
                for w, width in self._reported_windows:  # windows ending at t: no maturity offset
                    n_key = f"{fam.key}_n_{w}"
                    if n_key not in out:
                        out[n_key] = float(_count(times, t - width, t, rows))
                    out[f"{fam.key}_kf_{w}"] = (
                        float(labels.known(t - width, t, t, known_by)) if labels is not None else 0.0
                    )
        hi = t - delay
        lo = hi - self._widest_risk
        out["g_rn"] = float(_count(self.all_times, lo, hi, False))
        everything = self._family_labels.get("", {}).get("")
        out["g_rf"] = float(everything.known(lo, hi, t, known_by)) if everything is not None else 0.0

    def _amounts(self, out: dict[str, float], prefix: str, rows: Any, t: int) -> None:
        """Count, sum, sum of squares and max of price_paid over each window, one walk back from t."""
        windows = self._windows
        k = len(windows)
        n = [0] * k
        spend = [0.0] * k
        sq = [0.0] * k
        top = [NAN] * k
        widest = t - windows[-1][1]
        starts = [t - width for _, width in windows]
        for row in _window(rows, widest, t):
            ts = row.ts
            for i in range(k - 1, -1, -1):
                if ts < starts[i]:
                    break
                n[i] += 1
                if row.priced:
                    price = row.price
                    spend[i] += price
                    sq[i] += price * price
                    if not price <= top[i]:
                        top[i] = price
        for i, (w, _) in enumerate(windows):
            out[f"{prefix}_n_{w}"] = float(n[i])
            out[f"{prefix}_spend_{w}"] = spend[i]
            out[f"{prefix}_sq_{w}"] = sq[i]
            out[f"{prefix}_max_{w}"] = top[i]

    def _wallet(self, out: dict[str, float], txn: Facts, t: int) -> None:
        wallet = txn.wallet_address
        rows = self.by_wallet.get(wallet, [])
        totals = self.wallet_totals.get(wallet) or _WalletTotals()
        n, spend, located, lat, lon = totals.n, totals.spend, totals.located, totals.lat, totals.lon
        events, pms, ips = totals.events, totals.pms, totals.ips
        later: list[Row] = list(_tail(rows, t))
        if later:  # rows at or after t: take them out of copies of the totals
            events, pms, ips = Counter(events), Counter(pms), Counter(ips)
            for row in later:
                n -= 1
                spend -= row.price
                events[row.event] -= 1
                if row.pm is not None:
                    pms[row.pm] -= 1
                if row.ip is not None:
                    ips[row.ip] -= 1
                if row.lat is not None and row.lon is not None:
                    located -= 1
                    lat -= row.lat
                    lon -= row.lon
        before = len(rows) - len(later)
        out["w_n_all"] = float(n)
        out["w_spend_all"] = spend if n else 0.0
        out["w_located_n"] = float(located)
        out["w_lat_sum"] = lat if located else 0.0
        out["w_lon_sum"] = lon if located else 0.0
        out["w_events"] = float(sum(1 for c in events.values() if c > 0))
        out["w_pms"] = float(sum(1 for c in pms.values() if c > 0))
        out["w_pm_seen"] = float(pms.get(txn.payment_method, 0)) if txn.payment_method is not None else 0.0
        out["w_ip_seen"] = float(ips.get(txn.ip_address, 0)) if txn.ip_address is not None else 0.0
        out["w_first_buy_ts"] = rows[0].ts / US if before else NAN
        out["w_last_ts"] = rows[before - 1].ts / US if before else NAN
        hour, day = t - self._us["hour"], t - self._us["day"]
        n_1h = n_24h = we_1h = 0
        spend_24h = 0.0
        events_24h: set[str] = set()
        for row in _window(rows, day, t):
            n_24h += 1
            spend_24h += row.price
            events_24h.add(row.event)
            if row.ts >= hour:
                n_1h += 1
                if row.event == txn.event_id:
                    we_1h += 1
        out["w_n_1h"], out["w_n_24h"], out["w_spend_24h"] = float(n_1h), float(n_24h), spend_24h
        out["w_events_24h"], out["we_n_1h"] = float(len(events_24h)), float(we_1h)

    def _ip(self, out: dict[str, float], ip: str | None, wallet: str, t: int) -> None:
        n_1h = ipw = n_wallets = 0
        if ip is not None:
            # A shared IP (carrier NAT, a venue's Wi-Fi) can hold thousands of rows a day: bisect the window
            # and count in comprehensions rather than walk it row by row.
            rows = self.by_ip.get(ip, [])
            hi = bisect_left(rows, t, key=_ts)
            lo = bisect_left(rows, t - self._us["day"], key=_ts, hi=hi)
            n_1h = hi - bisect_left(rows, t - self._us["hour"], lo, hi, key=_ts)
            window = rows[lo:hi]
            n_wallets = len({row.wallet for row in window})
            ipw = sum(row.wallet == wallet for row in window)
        out["ip_n_1h"], out["ip_wallets_24h"], out["ipw_n_24h"] = float(n_1h), float(n_wallets), float(ipw)

    def _event(self, out: dict[str, float], event: str, t: int) -> None:
        totals = self.event_totals.get(event) or _EventTotals()
        n, spend, sold = totals.n, totals.spend, totals.sold
        located, lat, lon = totals.located, totals.lat, totals.lon
        for row in _tail(self.by_event.get(event, []), t):
            n -= 1
            spend -= row.price
            sold -= 0 if row.resale else 1
            if row.lat is not None and row.lon is not None:
                located -= 1
                lat -= row.lat
                lon -= row.lon
        out["e_n_all"], out["e_spend_all"], out["e_sold"] = float(n), spend if n else 0.0, float(sold)
        out["e_located_n"] = float(located)
        out["e_lat_sum"], out["e_lon_sum"] = (lat, lon) if located else (0.0, 0.0)
        hi = t - self._us["delay"]
        lo = hi - self._us["risk"]
        out["e_risk_n"] = float(_count_between(totals.times, lo, hi))
        out["e_risk_fraud"] = float(self._known(self._fraud_by_event.get(event, ()), lo, hi, t))

    def _seller(self, out: dict[str, float], seller: str | None, t: int) -> None:
        if seller is None:
            out["s_risk_n"] = out["s_risk_fraud"] = out["cp_known_fraud"] = out["cp_blacklisted"] = 0.0
            return
        hi = t - self._us["delay"]
        lo = hi - self._us["risk"]
        out["s_risk_n"] = float(_count_between(self.seller_times.get(seller, []), lo, hi))
        out["s_risk_fraud"] = float(self._known(self._fraud_by_seller.get(seller, ()), lo, hi, t))
        out["cp_known_fraud"] = float(
            sum(1 for f in self._fraud_by_party.get(seller, ()) if f.ts < t and f.labelled_us < t)
        )
        out["cp_blacklisted"] = float(
            sum(
                1
                for added, expires in self.blacklist.get(seller, ())
                if added < t and (expires is None or expires > t)
            )
        )

    @staticmethod
    def _known(labels: Iterable[FraudLabel], lo: int, hi: int, t: int) -> int:
        return sum(1 for f in labels if lo <= f.ts < hi and f.labelled_us < t)

    def _ticket(self, out: dict[str, float], ticket: str | None, wallet: str, t: int) -> None:
        n = kw = 0
        first = last = first_resale = NAN
        if ticket is not None:
            for row in self.by_ticket.get(ticket, ()):
                if row.ts >= t:
                    break
                n += 1
                if n == 1:
                    first = row.ts / US
                last = row.ts / US
                if row.resale and math.isnan(first_resale):
                    first_resale = row.ts / US
                if row.wallet == wallet:
                    kw += 1
        out["k_n"], out["kw_n"] = float(n), float(kw)
        out["k_first_ts"], out["k_last_ts"], out["k_first_resale_ts"] = first, last, first_resale

    def _pair_n(self, wallet: str, seller: str | None, t: int) -> float:
        if seller is None:
            return 0.0
        return float(bisect_left(self.by_pair.get(_pair(wallet, seller), []), t))

    def _first_sell(self, wallet: str, t: int) -> float:
        times = self.seller_times.get(wallet)
        return times[0] / US if times and times[0] < t else NAN

    def _hold(self, wallet: str, t: int) -> tuple[float, float]:
        """Resales before t with this wallet as seller whose ticket had an earlier transaction."""
        n, total = 0, 0
        for row in self.by_seller.get(wallet, ()):
            if row.ts >= t:
                break
            if row.ticket is None:
                continue
            ticket = self.by_ticket.get(row.ticket, [])
            i = bisect_left(ticket, row.ts, key=_ts)
            if i > 0:
                n += 1
                total += row.ts - ticket[i - 1].ts
        return float(n), total / US

    def _geo(self, txn: Facts, t: int) -> float:
        if txn.latitude is None or txn.longitude is None:
            return NAN
        best = NAN
        for row in _window(self.by_wallet.get(txn.wallet_address, []), t - self._us["geo"], t):
            if row.lat is not None and row.lon is not None:
                km = haversine(txn.latitude, txn.longitude, row.lat, row.lon)
                best = km if math.isnan(best) or km > best else best
        return best


# Family column → the `FraudLabel` attribute that keys its labels ("" = one key for all labels).
_FAMILY_LABEL_KEYS = {
    "wallet_address": "wallet",
    "event_id": "event",
    "seller_address": "seller",
    "ip_address": "ip",
    "payment_method": "pm",
    "": "",
}


def _count(times: Any, lo: int, hi: int, rows: bool) -> int:
    """Items of a sorted index with lo <= time < hi (`Row`s by their ts, or plain times)."""
    if rows:
        j = bisect_left(times, hi, key=_ts)
        return j - bisect_left(times, lo, 0, j, key=_ts)
    j = bisect_left(times, hi)
    return j - bisect_left(times, lo, 0, j)


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """`specs.haversine_km` for one pair of points, without numpy."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi = p2 - p1
    dlmb = math.radians(lon2) - math.radians(lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(max(a, 0.0), 1.0)))
