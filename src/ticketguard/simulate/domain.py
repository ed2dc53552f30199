"""The marketplace simulator: events, primary sales and resales of ticket NFTs, with labelled fraud.

Pure and deterministic: the same `SimulationConfig` (seed included) gives the same History, byte for byte.
Vectorised with numpy for the legitimate bulk (a million rows in seconds); the rarer fraud actors are
generated actor by actor.

What it makes — fraud a real platform sees, and legitimate behaviour that looks like it, so that no single
signal separates the two:

| pattern (label)        | what the actors do                                                            |
|------------------------|-------------------------------------------------------------------------------|
| scalper_bot (fraud)    | fresh wallets behind shared datacenter IPs (some behind residential proxies) buy |
|                        | bursts of tickets in the first minutes of a hot on-sale; most later resell them   |
|                        | at a markup (those resales are labelled legit: the buyer is a victim of price,   |
|                        | not a fraudster)                                                               |
| stolen_payment (fraud) | mostly new wallets cycling new payment methods on premium seats within hours; a  |
|                        | quarter are established wallets (friendly fraud) with one new card              |
| account_takeover (fraud)| an established wallet suddenly buys from another continent, new IP, often new   |
|                        | card; most attacks follow minutes after the owner's own purchase (geo jump)      |
| wash_trading (fraud)   | rings of related wallets pass the same tickets around at rising prices           |
| price_manipulation (fraud)| colluding pairs trade tickets at 3–8× face value (or near zero) to move comps |
| power_buyer (legit)    | established wallets buying groups of 4–10 tickets at hot on-sales               |
| honest_reseller (legit)| established wallets buying a few hot tickets and reselling at 1.3–2.2×          |
| traveller (legit)      | purchases from another city; VPN users appear on another continent at random    |
| normal (legit)         | everyone else: group purchases, the odd new card, shared household/carrier IPs  |

Labels arrive late, as in production: fraud after a chargeback/investigation delay (median ~6 days),
legitimate transactions once the 45-day chargeback window has closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from ticketguard.frames import History
from ticketguard.simulate.geo import CITIES, DATACENTERS

US = 1_000_000  # microseconds per second
MINUTE = 60 * US
HOUR = 3600 * US
DAY = 24 * HOUR

PATTERNS = (
    "normal",
    "power_buyer",
    "honest_reseller",
    "traveller",
    "scalped_resale",
    "scalper_bot",
    "stolen_payment",
    "account_takeover",
    "wash_trading",
    "price_manipulation",
)
FRAUD_PATTERNS = ("scalper_bot", "stolen_payment", "account_takeover", "wash_trading", "price_manipulation")
_CODE = {name: i for i, name in enumerate(PATTERNS)}
_FRAUD_CODES = np.array([_CODE[p] for p in FRAUD_PATTERNS])

# Share of fraudulent transactions per pattern.
FRAUD_MIX = {
    "scalper_bot": 0.32,
    "stolen_payment": 0.24,
    "account_takeover": 0.16,
    "wash_trading": 0.18,
    "price_manipulation": 0.10,
}
LEGIT_CHARGEBACK_WINDOW = 45 * DAY
LEGIT_OVERSHOOTS = (1.5, 2.5, 4.0, 8.0)
FRAUD_SPILL = 1.03  # a few fraud rows land after the window ends and are cut
PAYMENT_KINDS = np.array(["card", "card", "card", "apple_pay", "google_pay", "crypto"])


@dataclass(frozen=True)
class SimulationConfig:
    transactions: int = 200_000
    seed: int = 7
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    days: int = 120
    fraud_rate: float = 0.012

    def __post_init__(self) -> None:
        if self.transactions < 1_000:
            raise ValueError(f"transactions must be >= 1000, got {self.transactions}")
        if self.days < 14:
            raise ValueError(f"days must be >= 14, got {self.days}")
        if not 0 < self.fraud_rate < 0.2:
            raise ValueError(f"fraud_rate must be in (0, 0.2), got {self.fraud_rate}")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")


@dataclass
class _Rows:
    """Columns under construction; indexes into the wallet / IP / payment / event / ticket tables."""

    ts: list[np.ndarray] = field(default_factory=list)
    wallet: list[np.ndarray] = field(default_factory=list)
    seller: list[np.ndarray] = field(default_factory=list)
    event: list[np.ndarray] = field(default_factory=list)
    ticket: list[np.ndarray] = field(default_factory=list)
    price: list[np.ndarray] = field(default_factory=list)
    pm: list[np.ndarray] = field(default_factory=list)
    resale: list[np.ndarray] = field(default_factory=list)
    ip: list[np.ndarray] = field(default_factory=list)
    city: list[np.ndarray] = field(default_factory=list)
    pattern: list[np.ndarray] = field(default_factory=list)

    def add(self, **columns: object) -> None:
        n = len(np.atleast_1d(np.asarray(columns["ts"])))
        for name in (
            "ts",
            "wallet",
            "seller",
            "event",
            "ticket",
            "price",
            "pm",
            "resale",
            "ip",
            "city",
            "pattern",
        ):
            value = np.asarray(columns[name])
            if value.ndim == 0:
                value = np.full(n, value)
            getattr(self, name).append(value)

    def cat(self, name: str, dtype: type | str) -> np.ndarray:
        parts = getattr(self, name)
        return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)


class _Counter:
    def __init__(self, start: int = 0) -> None:
        self.next = start

    def take(self, n: int) -> np.ndarray:
        out = np.arange(self.next, self.next + n, dtype=np.int64)
        self.next += n
        return out


@dataclass
class _World:
    rng: np.random.Generator
    start_us: int
    end_us: int
    cities: pd.DataFrame
    # events
    ev_city: np.ndarray
    ev_face: np.ndarray
    ev_on_sale: np.ndarray
    ev_starts: np.ndarray
    ev_hot: np.ndarray
    ev_sellthrough: np.ndarray
    # legit wallets
    w_city: np.ndarray
    w_ip: np.ndarray
    w_pm: np.ndarray
    w_pm2: np.ndarray
    w_activity: np.ndarray
    w_vpn: np.ndarray
    w_traveller: np.ndarray
    wallets: _Counter
    ips: _Counter
    pms: _Counter
    tickets: _Counter
    city_pools: list[tuple[np.ndarray, np.ndarray]]
    cgnat_ips: np.ndarray

    @property
    def n_events(self) -> int:
        return len(self.ev_city)


def simulate(config: SimulationConfig, progress: Callable[[str, float], None] | None = None) -> History:
    """Simulate a marketplace history of exactly `config.transactions` transactions (see module doc)."""
    report = progress or (lambda _stage, _fraction: None)
    # Legit sales are generated with head-room (some fall outside the window) and the surplus is trimmed
    # from ordinary one-off purchases in `_assemble`, so fraud keeps its configured share. Short windows
    # lose more sales outside the window: when the head-room was not enough, start again (same seed, so
    # still deterministic) with more.
    for overshoot in LEGIT_OVERSHOOTS:
        try:
            return _generate(config, overshoot, report)
        except _Shortfall:
            report("more head-room", 0.0)
    raise RuntimeError(f"could not simulate {config.transactions} transactions in {config.days} days")


class _Shortfall(Exception):
    """Fewer transactions fell inside the window than asked for."""


def _generate(config: SimulationConfig, overshoot: float, report: Callable[[str, float], None]) -> History:
    rng = np.random.default_rng(config.seed)
    world = _build_world(rng, config)
    report("world", 0.1)
    rows = _Rows()
    legit_budget = int(config.transactions * overshoot * (1 - config.fraud_rate))
    primary_idx = _legit_primary(world, rows, int(legit_budget * 0.78))
    report("primary sales", 0.35)
    _lookalikes(world, rows, int(legit_budget * 0.05))
    _legit_resales(world, rows, primary_idx, int(legit_budget * 0.17))
    report("resales", 0.5)
    fraud_budget = config.transactions * FRAUD_SPILL * config.fraud_rate
    _scalper_bots(world, rows, int(fraud_budget * FRAUD_MIX["scalper_bot"]))
    _stolen_payment(world, rows, int(fraud_budget * FRAUD_MIX["stolen_payment"]))
    _account_takeover(world, rows, int(fraud_budget * FRAUD_MIX["account_takeover"]))
    _wash_trading(world, rows, int(fraud_budget * FRAUD_MIX["wash_trading"]))
    _price_manipulation(world, rows, int(fraud_budget * FRAUD_MIX["price_manipulation"]))
    report("fraud", 0.6)
    history = _assemble(world, rows, config)
    report("assembled", 1.0)
    return history


# ------------------------------------------------------------------------------------------ world
def _build_world(rng: np.random.Generator, config: SimulationConfig) -> _World:
    n = config.transactions
    start_us = int(config.start.timestamp() * US)
    end_us = start_us + config.days * DAY
    cities = pd.DataFrame(
        list(CITIES) + list(DATACENTERS),
        columns=["name", "country", "lat", "lon", "continent", "weight"],
    )
    n_home_cities = len(CITIES)
    home_weights = cities["weight"].to_numpy()[:n_home_cities]
    home_p = home_weights / home_weights.sum()

    n_events = int(np.clip(n / 1500, 12, 4000))
    ev_city = rng.choice(n_home_cities, size=n_events, p=home_p)
    ev_face = np.round(np.clip(rng.lognormal(np.log(70), 0.6, n_events), 12, 900), 2)
    # on-sales from 20 days before the window to 15 days before its end (at least 20 days into it)
    on_sale_span = max(config.days + 5, 40) * DAY
    ev_on_sale = start_us - 20 * DAY + (rng.random(n_events) * on_sale_span).astype(np.int64)
    ev_starts = ev_on_sale + (rng.uniform(12, 110, n_events) * DAY).astype(np.int64)
    ev_hot = rng.random(n_events) < 0.18
    on_sale_inside = np.flatnonzero(ev_on_sale > start_us)
    if not ev_hot[on_sale_inside].any():  # small histories: scalper bots need a hot on-sale to attack
        ev_hot[rng.choice(on_sale_inside, size=max(1, len(on_sale_inside) // 6), replace=False)] = True
    ev_sellthrough = np.where(ev_hot, rng.uniform(0.96, 1.0, n_events), rng.uniform(0.3, 0.9, n_events))

    n_wallets = max(200, n // 6)
    w_city = rng.choice(n_home_cities, size=n_wallets, p=home_p)
    ips = _Counter(1)
    w_ip = ips.take(n_wallets)
    household = rng.random(n_wallets) < 0.22  # shares the previous wallet's home IP
    household[0] = False
    w_ip = np.where(household, np.roll(w_ip, 1), w_ip)
    pms = _Counter(1)
    w_pm = pms.take(n_wallets)
    w_pm2 = np.where(rng.random(n_wallets) < 0.3, pms.take(n_wallets), -1)
    w_activity = rng.lognormal(0.0, 1.1, n_wallets)
    w_vpn = rng.random(n_wallets) < 0.015
    w_traveller = rng.random(n_wallets) < 0.04
    city_pools = []
    for c in range(n_home_cities):
        members = np.flatnonzero(w_city == c)
        if len(members) == 0:
            members = rng.choice(n_wallets, 1)
        city_pools.append((members, np.cumsum(w_activity[members])))
    cgnat_ips = ips.take(max(20, n // 5000))  # carrier-grade NAT: many unrelated wallets, one address
    return _World(
        rng=rng,
        start_us=start_us,
        end_us=end_us,
        cities=cities,
        ev_city=ev_city,
        ev_face=ev_face,
        ev_on_sale=ev_on_sale,
        ev_starts=ev_starts,
        ev_hot=ev_hot,
        ev_sellthrough=ev_sellthrough,
        w_city=w_city,
        w_ip=w_ip,
        w_pm=w_pm,
        w_pm2=w_pm2,
        w_activity=w_activity,
        w_vpn=w_vpn,
        w_traveller=w_traveller,
        wallets=_Counter(n_wallets),
        ips=ips,
        pms=pms,
        tickets=_Counter(0),
        city_pools=city_pools,
        cgnat_ips=cgnat_ips,
    )


def _sale_offsets(world: _World, events: np.ndarray, burst_p: np.ndarray) -> np.ndarray:
    """Microseconds after on-sale: a burst in the first hours, then a long tail until the event."""
    rng = world.rng
    window = (world.ev_starts[events] - world.ev_on_sale[events]).astype(np.float64)
    burst = rng.random(len(events)) < burst_p
    offsets = np.where(
        burst,
        rng.exponential(1.5 * HOUR, len(events)),
        rng.beta(1.0, 1.8, len(events)) * window,
    )
    return np.minimum(offsets, window - HOUR).astype(np.int64)


def _pick_wallets(world: _World, event_city: np.ndarray) -> np.ndarray:
    """Buyers for sales in these cities: 70 % locals, 30 % anyone, weighted by how active wallets are."""
    rng = world.rng
    n = len(event_city)
    out = np.empty(n, dtype=np.int64)
    local = rng.random(n) < 0.7
    anyone = np.flatnonzero(~local)
    global_cum = np.cumsum(world.w_activity)
    out[anyone] = np.searchsorted(global_cum, rng.random(len(anyone)) * global_cum[-1], side="right")
    for c, (members, cum) in enumerate(world.city_pools):
        idx = np.flatnonzero(local & (event_city == c))
        if len(idx):
            out[idx] = members[np.searchsorted(cum, rng.random(len(idx)) * cum[-1], side="right")]
    return np.minimum(out, len(world.w_activity) - 1)


def _legit_request_context(
    world: _World, wallets: np.ndarray, event_city: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IP, payment method, city and pattern of legitimate requests by these wallets."""
    rng = world.rng
    n = len(wallets)
    roll = rng.random(n)
    ip = np.where(
        roll < 0.86,
        world.w_ip[wallets],
        np.where(roll < 0.95, world.ips.take(n), world.cgnat_ips[rng.integers(0, len(world.cgnat_ips), n)]),
    )
    pm_roll = rng.random(n)
    has_second = world.w_pm2[wallets] >= 0
    pm = np.where(
        (pm_roll < 0.25) & has_second,
        world.w_pm2[wallets],
        np.where(pm_roll > 0.97, world.pms.take(n), world.w_pm[wallets]),
    )
    city = world.w_city[wallets].copy()
    pattern = np.full(n, _CODE["normal"])
    travelling = world.w_traveller[wallets] & (rng.random(n) < 0.25)
    city[travelling] = event_city[travelling]
    away = travelling & (event_city != world.w_city[wallets])
    pattern[away] = _CODE["traveller"]
    vpn = world.w_vpn[wallets] & (rng.random(n) < 0.3)
    city[vpn] = rng.integers(0, len(CITIES), int(vpn.sum()))
    pattern[vpn] = _CODE["traveller"]
    return ip, pm, city, pattern


def _legit_primary(world: _World, rows: _Rows, budget: int) -> np.ndarray:
    """Ordinary primary sales: orders of 1–4 tickets; returns the row-block index for resales."""
    rng = world.rng
    weight = world.ev_sellthrough * np.where(world.ev_hot, 3.0, 1.0) * rng.lognormal(0, 0.5, world.n_events)
    qty_values = np.array([1, 2, 3, 4])
    qty_p = np.array([0.55, 0.30, 0.08, 0.07])
    n_orders = int(budget / float((qty_values * qty_p).sum()))
    events = rng.choice(world.n_events, size=n_orders, p=weight / weight.sum())
    order_ts = world.ev_on_sale[events] + _sale_offsets(
        world, events, np.where(world.ev_hot[events], 0.45, 0.12)
    )
    wallets = _pick_wallets(world, world.ev_city[events])
    qty = rng.choice(qty_values, size=n_orders, p=qty_p)
    # Explode orders into tickets, seconds apart, same wallet / event / card / IP.
    order_of = np.repeat(np.arange(n_orders), qty)
    within = np.arange(len(order_of)) - np.repeat(np.cumsum(qty) - qty, qty)
    ts = order_ts[order_of] + within * rng.integers(3 * US, 40 * US, len(order_of))
    ev = events[order_of]
    w = wallets[order_of]
    ip, pm, city, pattern = _legit_request_context(world, wallets, world.ev_city[events])
    tier = rng.choice(np.array([1.0, 1.5, 2.5]), size=n_orders, p=[0.7, 0.22, 0.08])
    price = np.round(world.ev_face[ev] * tier[order_of], 2)
    tickets = world.tickets.take(len(order_of))
    rows.add(
        ts=ts,
        wallet=w,
        seller=-1,
        event=ev,
        ticket=tickets,
        price=price,
        pm=pm[order_of],
        resale=False,
        ip=ip[order_of],
        city=city[order_of],
        pattern=pattern[order_of],
    )
    return np.array([len(rows.ts) - 1])


def _resell(
    world: _World,
    rows: _Rows,
    ts: np.ndarray,
    seller: np.ndarray,
    event: np.ndarray,
    ticket: np.ndarray,
    price: np.ndarray,
    markup: np.ndarray,
    earliest_gap: np.ndarray,
    pattern: int | np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Resale of tickets to legitimate buyers after a hold.

    Returns the new rows' (time, buyer, event, ticket, price, seller); tickets with no time left before
    their event are not resold, so these can be fewer than the inputs.
    """
    rng = world.rng
    n = len(ts)
    latest = world.ev_starts[event] - 2 * HOUR
    room = latest - ts - earliest_gap
    keep = room > 0
    ts, seller, event, ticket, price, markup, earliest_gap = (
        a[keep] for a in (ts, seller, event, ticket, price, markup, earliest_gap)
    )
    if isinstance(pattern, np.ndarray):
        pattern = pattern[keep]
    room = room[keep]
    n = len(ts)
    sale_ts = ts + earliest_gap + (rng.beta(1.3, 2.5, n) * room).astype(np.int64)
    buyers = _pick_wallets(world, world.ev_city[event])
    same = buyers == seller
    buyers[same] = (buyers[same] + 1) % len(world.w_activity)
    ip, pm, city, pat = _legit_request_context(world, buyers, world.ev_city[event])
    new_price = np.round(price * markup, 2)
    pattern_col = np.where(pat == _CODE["normal"], pattern, pat)
    rows.add(
        ts=sale_ts,
        wallet=buyers,
        seller=seller,
        event=event,
        ticket=ticket,
        price=new_price,
        pm=pm,
        resale=True,
        ip=ip,
        city=city,
        pattern=pattern_col,
    )
    return sale_ts, buyers, event, ticket, new_price, seller


def _legit_resales(world: _World, rows: _Rows, primary_block: np.ndarray, budget: int) -> None:
    rng = world.rng
    b = int(primary_block[0])
    ts, wallet, event, ticket, price = (
        rows.ts[b],
        rows.wallet[b],
        rows.event[b],
        rows.ticket[b],
        rows.price[b],
    )
    first = int(budget * 0.9)
    pick = rng.choice(len(ts), size=min(first, len(ts)), replace=False)
    pick.sort()
    hot = world.ev_hot[event[pick]]
    markup = np.where(
        hot, rng.lognormal(np.log(1.55), 0.3, len(pick)), rng.lognormal(np.log(1.05), 0.18, len(pick))
    )
    gap = rng.integers(1 * HOUR, 3 * DAY, len(pick))
    out = _resell(
        world,
        rows,
        ts[pick],
        wallet[pick],
        event[pick],
        ticket[pick],
        price[pick],
        markup,
        gap,
        _CODE["normal"],
    )
    # A second hand-on for some, and the odd ticket returned to a friend who sold it (never both: a
    # ticket is sold on only by whoever holds it).
    back = rng.random(len(out[0])) < 0.004
    onward = np.flatnonzero(~back)
    second = rng.choice(onward, size=min(budget - first, len(onward)), replace=False)
    second.sort()
    s_ts, s_wallet, s_event, s_ticket, s_price = (a[second] for a in out[:5])
    markup2 = rng.lognormal(np.log(1.05), 0.2, len(second))
    gap2 = rng.integers(1 * HOUR, 2 * DAY, len(second))
    _resell(world, rows, s_ts, s_wallet, s_event, s_ticket, s_price, markup2, gap2, _CODE["normal"])
    if back.any():
        orig_seller = out[5]
        r_ts = out[0][back] + rng.integers(2 * HOUR, 3 * DAY, int(back.sum()))
        ok = r_ts < world.ev_starts[out[2][back]] - HOUR
        idx = np.flatnonzero(back)[ok]
        buyers = orig_seller[idx]
        ip, pm, city, pat = _legit_request_context(world, buyers, world.ev_city[out[2][idx]])
        rows.add(
            ts=r_ts[ok],
            wallet=buyers,
            seller=out[1][idx],
            event=out[2][idx],
            ticket=out[3][idx],
            price=np.round(out[4][idx] * rng.uniform(0.8, 1.0, len(idx)), 2),
            pm=pm,
            resale=True,
            ip=ip,
            city=city,
            pattern=pat,
        )


def _lookalikes(world: _World, rows: _Rows, budget: int) -> None:
    """Power buyers and honest resellers: legitimate, and easy to mistake for bots and scalpers."""
    rng = world.rng
    hot_events = np.flatnonzero(world.ev_hot)
    established = np.argsort(-world.w_activity)[: max(50, len(world.w_activity) // 5)]
    made = 0
    while made < budget:
        wallet = int(rng.choice(established))
        event = int(rng.choice(hot_events))
        start = int(world.ev_on_sale[event] + rng.integers(0, 40 * MINUTE))
        if rng.random() < 0.55:  # power buyer: one big group order, occasionally on a new card
            k = int(rng.integers(4, 11))
            ts = start + np.cumsum(rng.integers(5 * US, 60 * US, k))
            pm = world.pms.take(1)[0] if rng.random() < 0.15 else world.w_pm[wallet]
            tier = rng.choice([1.0, 1.5, 2.5], p=[0.5, 0.3, 0.2])
            rows.add(
                ts=ts,
                wallet=wallet,
                seller=-1,
                event=event,
                ticket=world.tickets.take(k),
                price=np.round(world.ev_face[event] * tier, 2),
                pm=pm,
                resale=False,
                ip=world.w_ip[wallet],
                city=world.w_city[wallet],
                pattern=_CODE["power_buyer"],
            )
            made += k
        else:  # honest reseller: a few tickets at human pace, most resold within two weeks
            k = int(rng.integers(2, 7))
            ts = start + np.cumsum(rng.integers(1 * MINUTE, 6 * MINUTE, k))
            tickets = world.tickets.take(k)
            price = np.full(k, np.round(world.ev_face[event], 2))
            rows.add(
                ts=ts,
                wallet=wallet,
                seller=-1,
                event=event,
                ticket=tickets,
                price=price,
                pm=world.w_pm[wallet],
                resale=False,
                ip=world.w_ip[wallet],
                city=world.w_city[wallet],
                pattern=_CODE["honest_reseller"],
            )
            sell = rng.random(k) < 0.8
            m = int(sell.sum())
            if m:
                _resell(
                    world,
                    rows,
                    ts[sell],
                    np.full(m, wallet),
                    np.full(m, event),
                    tickets[sell],
                    price[sell],
                    rng.uniform(1.3, 2.2, m),
                    rng.integers(1 * DAY, 14 * DAY, m),
                    _CODE["honest_reseller"],
                )
            made += k + m


# ------------------------------------------------------------------------------------------ fraud
def _upcoming_events(world: _World, t: int, hot_only: bool = False) -> np.ndarray:
    ok = (world.ev_on_sale <= t) & (world.ev_starts > t + DAY)
    if hot_only:
        ok &= world.ev_hot
    return np.flatnonzero(ok)


def _far_city(world: _World, home: int) -> int:
    continents = world.cities["continent"].to_numpy()[: len(CITIES)]
    options = np.flatnonzero(continents != continents[home])
    return int(world.rng.choice(options))


def _scalper_bots(world: _World, rows: _Rows, budget: int) -> None:
    rng = world.rng
    hot = np.flatnonzero(world.ev_hot & (world.ev_on_sale > world.start_us))
    n_dc = len(DATACENTERS)
    made = 0
    while made < budget:
        event = int(rng.choice(hot))
        bots = world.wallets.take(int(rng.integers(4, 26)))
        proxies = rng.random() < 0.25  # residential proxies: one clean-looking IP per bot
        n_ips = len(bots) if proxies else max(1, len(bots) // int(rng.integers(3, 9)))
        ips = world.ips.take(n_ips)
        dc_city = len(CITIES) + int(rng.integers(0, n_dc))
        for i, bot in enumerate(bots):
            k = int(rng.integers(2, 9))
            t0 = int(world.ev_on_sale[event] + rng.integers(0, 25 * MINUTE))
            ts = t0 + np.cumsum(rng.integers(1 * US, 15 * US, k))
            cards = world.pms.take(2 if rng.random() < 0.3 else 1)
            city = int(rng.integers(0, len(CITIES))) if proxies else dc_city
            tickets = world.tickets.take(k)
            price = np.full(k, np.round(world.ev_face[event], 2))
            rows.add(
                ts=ts,
                wallet=bot,
                seller=-1,
                event=event,
                ticket=tickets,
                price=price,
                pm=cards[rng.integers(0, len(cards), k)],
                resale=False,
                ip=ips[i % n_ips],
                city=city,
                pattern=_CODE["scalper_bot"],
            )
            made += k
            resell = rng.random(k) < 0.6
            m = int(resell.sum())
            if m:
                _resell(
                    world,
                    rows,
                    ts[resell],
                    np.full(m, bot),
                    np.full(m, event),
                    tickets[resell],
                    price[resell],
                    rng.uniform(1.6, 3.0, m),
                    rng.integers(1 * DAY, 12 * DAY, m),
                    _CODE["scalped_resale"],
                )


def _stolen_payment(world: _World, rows: _Rows, budget: int) -> None:
    rng = world.rng
    established = np.argsort(-world.w_activity)[: max(50, len(world.w_activity) // 3)]
    made = 0
    while made < budget:
        t = int(rng.integers(world.start_us + 7 * DAY, world.end_us))
        events = _upcoming_events(world, t)
        if len(events) == 0:
            continue
        friendly = rng.random() < 0.25
        if friendly:
            wallet = int(rng.choice(established))
            k = int(rng.integers(1, 4))
            home = int(world.w_city[wallet])
            ip_pool = np.array([world.w_ip[wallet]])
        else:
            wallet = int(world.wallets.take(1)[0])
            k = int(rng.integers(2, 8))
            home = int(rng.integers(0, len(CITIES)))
            ip_pool = world.ips.take(int(rng.integers(1, k + 1)))
        ts = t + np.sort(rng.integers(0, int(rng.uniform(0.5, 10) * HOUR), k))
        ev = rng.choice(events, size=k)
        cards = world.pms.take(int(rng.integers(1, k + 1)))
        tier = rng.choice(np.array([1.0, 1.5, 2.5]), size=k, p=[0.3, 0.3, 0.4])
        rows.add(
            ts=ts,
            wallet=wallet,
            seller=-1,
            event=ev,
            ticket=world.tickets.take(k),
            price=np.round(world.ev_face[ev] * tier, 2),
            pm=cards[rng.integers(0, len(cards), k)],
            resale=False,
            ip=ip_pool[rng.integers(0, len(ip_pool), k)],
            city=home,
            pattern=_CODE["stolen_payment"],
        )
        made += k


def _account_takeover(world: _World, rows: _Rows, budget: int) -> None:
    rng = world.rng
    b = 0  # the legit primary block: victims are wallets seen buying there
    v_ts, v_wallet = rows.ts[b], rows.wallet[b]
    made = 0
    while made < budget:
        i = int(rng.integers(0, len(v_ts)))
        wallet = int(v_wallet[i])
        if rng.random() < 0.7:  # session hijacked right after the owner's own purchase
            t = int(v_ts[i] + rng.integers(3 * MINUTE, 55 * MINUTE))
        else:
            t = int(v_ts[i] + rng.integers(2 * DAY, 20 * DAY))
        events = _upcoming_events(world, t, hot_only=rng.random() < 0.6)
        if len(events) == 0 or t >= world.end_us:
            continue
        k = int(rng.integers(2, 6))
        ts = t + np.cumsum(rng.integers(20 * US, 5 * MINUTE, k))
        ev = rng.choice(events, size=k)
        pm = world.pms.take(1)[0] if rng.random() < 0.5 else world.w_pm[wallet]
        tier = rng.choice(np.array([1.0, 1.5, 2.5]), size=k, p=[0.4, 0.3, 0.3])
        rows.add(
            ts=ts,
            wallet=wallet,
            seller=-1,
            event=ev,
            ticket=world.tickets.take(k),
            price=np.round(world.ev_face[ev] * tier, 2),
            pm=pm,
            resale=False,
            ip=world.ips.take(1)[0],
            city=_far_city(world, int(world.w_city[wallet])),
            pattern=_CODE["account_takeover"],
        )
        made += k


def _wash_trading(world: _World, rows: _Rows, budget: int) -> None:
    rng = world.rng
    made = 0
    while made < budget:
        t = int(rng.integers(world.start_us, world.end_us - 10 * DAY))
        events = _upcoming_events(world, t)
        events = events[world.ev_starts[events] > t + 15 * DAY]
        if len(events) == 0:
            continue
        ring = world.wallets.take(int(rng.integers(3, 6)))
        shared_ip = rng.random() < 0.6
        ring_ips = np.repeat(world.ips.take(1), len(ring)) if shared_ip else world.ips.take(len(ring))
        home = int(rng.integers(0, len(CITIES)))
        ring_pm = world.pms.take(len(ring))
        event = int(rng.choice(events))
        for _ in range(int(rng.integers(1, 4))):
            ticket = world.tickets.take(1)[0]
            price = float(np.round(world.ev_face[event] * rng.choice([1.0, 1.5]), 2))
            owner = 0
            ts = t + int(rng.integers(0, DAY))
            rows.add(
                ts=ts,
                wallet=ring[owner],
                seller=-1,
                event=event,
                ticket=ticket,
                price=price,
                pm=ring_pm[owner],
                resale=False,
                ip=ring_ips[owner],
                city=home,
                pattern=_CODE["wash_trading"],
            )
            made += 1
            for _hop in range(int(rng.integers(4, 11))):
                ts += int(rng.integers(2 * HOUR, 3 * DAY))
                if ts >= world.ev_starts[event] - 2 * HOUR:
                    break
                nxt = int((owner + rng.integers(1, len(ring))) % len(ring))
                price = float(np.round(price * rng.uniform(1.08, 1.4), 2))
                rows.add(
                    ts=ts,
                    wallet=ring[nxt],
                    seller=ring[owner],
                    event=event,
                    ticket=ticket,
                    price=price,
                    pm=ring_pm[nxt],
                    resale=True,
                    ip=ring_ips[nxt],
                    city=home,
                    pattern=_CODE["wash_trading"],
                )
                owner = nxt
                made += 1


def _price_manipulation(world: _World, rows: _Rows, budget: int) -> None:
    rng = world.rng
    made = 0
    while made < budget:
        t = int(rng.integers(world.start_us, world.end_us - 5 * DAY))
        events = _upcoming_events(world, t)
        events = events[world.ev_starts[events] > t + 8 * DAY]
        if len(events) == 0:
            continue
        seller, buyer = world.wallets.take(2)
        home = int(rng.integers(0, len(CITIES)))
        seller_ip, buyer_ip = world.ips.take(2)
        seller_pm, buyer_pm = world.pms.take(2)
        for _ in range(int(rng.integers(2, 5))):
            event = int(rng.choice(events))
            ticket = world.tickets.take(1)[0]
            face = float(world.ev_face[event])
            ts = t + int(rng.integers(0, 2 * DAY))
            # The seller's own purchase looks ordinary and is labelled so; the rigged resale is the fraud.
            rows.add(
                ts=ts,
                wallet=seller,
                seller=-1,
                event=event,
                ticket=ticket,
                price=round(face, 2),
                pm=seller_pm,
                resale=False,
                ip=seller_ip,
                city=home,
                pattern=_CODE["normal"],
            )
            factor = rng.uniform(3.0, 8.0) if rng.random() < 0.8 else rng.uniform(0.05, 0.3)
            rows.add(
                ts=ts + int(rng.integers(1 * HOUR, 3 * DAY)),
                wallet=buyer,
                seller=seller,
                event=event,
                ticket=ticket,
                price=round(face * factor, 2),
                pm=buyer_pm,
                resale=True,
                ip=buyer_ip,
                city=home,
                pattern=_CODE["price_manipulation"],
            )
            made += 1


# ------------------------------------------------------------------------------------------ output
def _hex_ids(rng: np.random.Generator, n: int, nbytes: int, prefix: str) -> np.ndarray:
    raw = rng.bytes(n * nbytes)
    hexed = raw.hex()
    width = 2 * nbytes
    return np.array([prefix + hexed[i * width : (i + 1) * width] for i in range(n)], dtype=object)


def _dotted_quads(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct public-looking IPv4 addresses (first octet 11–223, never private ranges)."""
    values = rng.choice(np.uint64(2**24) * np.uint64(200), size=n, replace=False).astype(np.int64)
    first = 11 + values // (2**24)
    first = np.where(np.isin(first, [127, 169, 172, 192]), first + 1, first)
    rest = values % (2**24)
    return np.array(
        [
            f"{a}.{b}.{c}.{d}"
            for a, b, c, d in zip(first, rest >> 16, (rest >> 8) & 255, rest & 255, strict=True)
        ],
        dtype=object,
    )


def _assemble(world: _World, rows: _Rows, config: SimulationConfig) -> History:
    rng = world.rng
    ts = rows.cat("ts", np.int64)
    ticket = rows.cat("ticket", np.int64)
    pattern = rows.cat("pattern", np.int64)
    # Only the simulated window, in time order; exactly the requested number of transactions.
    in_window = (ts >= world.start_us) & (ts < world.end_us)
    # Order: time, then ticket and resale flag, so a ticket's mint always precedes its resale.
    resale = rows.cat("resale", bool)
    surplus = int(in_window.sum()) - config.transactions
    if surplus < 0:
        raise _Shortfall
    # Trim the surplus from ordinary purchases of tickets never resold: nothing else refers to them.
    once = np.bincount(ticket)[ticket] == 1
    droppable = np.flatnonzero(in_window & once & ~resale & (pattern == _CODE["normal"]))
    keep = in_window.copy()
    keep[rng.choice(droppable, size=surplus, replace=False)] = False
    order = np.lexsort((resale, ticket, ts))
    order = order[keep[order]]
    ts, ticket, pattern, resale = ts[order], ticket[order], pattern[order], resale[order]
    wallet = rows.cat("wallet", np.int64)[order]
    seller = rows.cat("seller", np.int64)[order]
    event = rows.cat("event", np.int64)[order]
    price = rows.cat("price", np.float64)[order]
    pm = rows.cat("pm", np.int64)[order]
    ip = rows.cat("ip", np.int64)[order]
    city = rows.cat("city", np.int64)[order]

    # Events: capacity from what actually sold over the whole simulation, by each event's sell-through.
    all_event = rows.cat("event", np.int64)
    primary_all = ~rows.cat("resale", bool)
    sold = np.bincount(all_event[primary_all], minlength=world.n_events)
    capacity = np.maximum(100, np.ceil(sold / world.ev_sellthrough).astype(np.int64))
    used_events = np.unique(event)
    event_ids = np.array([f"sim-evt-{i:05d}" for i in range(world.n_events)], dtype=object)
    names = world.cities["name"].to_numpy()
    events = pd.DataFrame(
        {
            "event_id": event_ids[used_events],
            "name": [
                f"{'Headliner' if world.ev_hot[i] else 'Show'} #{i} in {names[world.ev_city[i]]}"
                for i in used_events
            ],
            "organizer_id": [f"sim-org-{i % max(3, world.n_events // 5):04d}" for i in used_events],
            "venue": [f"{names[world.ev_city[i]]} Arena {i % 7 + 1}" for i in used_events],
            "city": names[world.ev_city[used_events]],
            "capacity": capacity[used_events],
            "face_value": world.ev_face[used_events],
            "on_sale_at": pd.to_datetime(world.ev_on_sale[used_events], unit="us", utc=True),
            "starts_at": pd.to_datetime(world.ev_starts[used_events], unit="us", utc=True),
        }
    )

    # Identifier tables, drawn once per entity so the same seed names everything the same way.
    n_wallets = world.wallets.next
    addresses = _hex_ids(rng, n_wallets, 20, "0x")
    used_ips, ip_code = np.unique(ip, return_inverse=True)
    ip_text = _dotted_quads(rng, len(used_ips))[ip_code]
    used_pms, pm_code = np.unique(pm, return_inverse=True)
    kinds = PAYMENT_KINDS[rng.integers(0, len(PAYMENT_KINDS), len(used_pms))]
    pm_names = np.array(
        [f"{k}_{h}" for k, h in zip(kinds, _hex_ids(rng, len(used_pms), 6, ""), strict=True)], dtype=object
    )
    # Ticket ids: event id + mint order within the event.
    used_tickets, ticket_code = np.unique(ticket, return_inverse=True)
    first_event = np.zeros(len(used_tickets), dtype=np.int64)
    first_event[ticket_code[::-1]] = event[::-1]
    serial = pd.Series(np.arange(len(used_tickets))).groupby(first_event).cumcount().to_numpy()
    ticket_names = np.array(
        [f"{event_ids[e]}-{s:06d}" for e, s in zip(first_event, serial, strict=True)], dtype=object
    )

    lat = world.cities["lat"].to_numpy()[city] + rng.normal(0, 0.08, len(city))
    lon = world.cities["lon"].to_numpy()[city] + rng.normal(0, 0.08, len(city))
    transaction_ids = np.array([f"sim-{config.seed}-{i:09d}" for i in range(len(ts))], dtype=object)
    timestamps = pd.to_datetime(ts, unit="us", utc=True)
    transactions = pd.DataFrame(
        {
            "transaction_id": transaction_ids,
            "wallet_address": addresses[wallet],
            "event_id": event_ids[event],
            "ticket_id": ticket_names[ticket_code],
            "price_paid": price,
            "payment_method": pm_names[pm_code],
            "is_resale": resale,
            "status": "completed",
            "timestamp": timestamps,
            "seller_address": np.where(seller >= 0, addresses[np.maximum(seller, 0)], None),
            "ip_address": ip_text,
            "country": world.cities["country"].to_numpy()[city],
            "latitude": np.round(lat, 4),
            "longitude": np.round(lon, 4),
            "source": "simulator",
        }
    )
    is_fraud = np.isin(pattern, _FRAUD_CODES)
    delay = np.where(
        is_fraud,
        np.clip(rng.lognormal(np.log(6 * DAY), 0.7, len(ts)), 1 * DAY, 60 * DAY),
        LEGIT_CHARGEBACK_WINDOW,
    ).astype(np.int64)
    labels = pd.DataFrame(
        {
            "transaction_id": transaction_ids,
            "is_fraud": is_fraud,
            "pattern": np.array(PATTERNS, dtype=object)[pattern],
            "source": "simulator",
            "labelled_at": pd.to_datetime(ts + delay, unit="us", utc=True),
        }
    )
    return History(events=events, transactions=transactions, labels=labels)


def summarize(history: History) -> dict[str, object]:
    """Counts a person checks after a simulation: volume, time span, fraud rate and mix."""
    tx, labels = history.transactions, history.labels
    by_pattern = labels.groupby("pattern")["is_fraud"].agg(["size", "sum"])
    return {
        "transactions": len(tx),
        "events": len(history.events),
        "wallets": int(tx["wallet_address"].nunique()),
        "resales": int(tx["is_resale"].sum()),
        "first": tx["timestamp"].min().isoformat() if len(tx) else None,
        "last": tx["timestamp"].max().isoformat() if len(tx) else None,
        "fraud_rate": float(labels["is_fraud"].mean()) if len(labels) else 0.0,
        "patterns": {str(k): int(v) for k, v in by_pattern["size"].items()},
    }


def window_end(config: SimulationConfig) -> datetime:
    return config.start + timedelta(days=config.days)
