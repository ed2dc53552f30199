"""Attacks appended to a history, as an attacker would send them: for evasion tests and benchmarks.

`resale_farm`: one seller buys tickets of a popular upcoming event at face value, then resells them at a
multiple of face value to freshly created wallets, a few tickets each — through an integration that sends
none of the optional fields (no ip_address, payment_method or location), like the deployment guide's.

Pure pandas/numpy; the rows are in the layout of `ticketguard.frames.TRANSACTION_COLUMNS`, after the
history's last transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ticketguard.frames import TRANSACTION_COLUMNS, History, conform


@dataclass(frozen=True)
class Farm:
    buyers: int = 12
    tickets_each: int = 4
    markup: float = 8.0
    with_optional_fields: bool = False
    seed: int = 0


def _wallet(rng: np.random.Generator) -> str:
    return "0x" + "".join(rng.choice(list("0123456789abcdef"), 40))


def resale_farm(history: History, farm: Farm = Farm()) -> tuple[pd.DataFrame, np.ndarray]:
    """The farm's transactions (the seller's primary purchases, then the resales) and a mask of the resales.

    The event is the one with the most primary sales in the history's last week whose start is still ahead;
    the seller buys ``buyers × tickets_each`` of its tickets over the two days after the history ends, then
    resells them over the next twelve hours: each buyer, a wallet never seen before, buys its tickets a few
    minutes apart at ``markup`` × face value.
    """
    rng = np.random.default_rng(farm.seed)
    tx = history.transactions
    end = pd.Timestamp(tx["timestamp"].max())
    events = history.events.set_index("event_id")
    recent = tx[(tx["timestamp"] > end - pd.Timedelta(days=7)) & ~tx["is_resale"].astype(bool)]
    upcoming = events.index[pd.to_datetime(events["starts_at"], utc=True) > end + pd.Timedelta(days=4)]
    counts = recent[recent["event_id"].isin(upcoming)]["event_id"].value_counts()
    if counts.empty:
        raise ValueError("the history has no upcoming event with recent sales to farm")
    event = str(counts.index[0])
    face = float(pd.to_numeric(events["face_value"]).loc[event]) or float(
        recent[recent["event_id"] == event]["price_paid"].mean()
    )
    seller = _wallet(rng)
    n = farm.buyers * farm.tickets_each
    tickets = [f"{event}-farm-{farm.seed}-{i:03d}" for i in range(n)]
    ip = "198.51.100.77" if farm.with_optional_fields else None
    rows = []
    start = end + pd.Timedelta(minutes=1)
    for i, ticket in enumerate(tickets):
        rows.append(
            {
                "transaction_id": f"farm-{farm.seed}-mint-{i:03d}",
                "wallet_address": seller,
                "event_id": event,
                "ticket_id": ticket,
                "price_paid": round(face, 2),
                "payment_method": "card_farm" if farm.with_optional_fields else None,
                "is_resale": False,
                "status": "completed",
                "timestamp": start + pd.Timedelta(hours=48 * i / n),
                "seller_address": None,
                "ip_address": ip,
                "country": None,
                "latitude": 48.85 if farm.with_optional_fields else None,
                "longitude": 2.35 if farm.with_optional_fields else None,
                "source": "import",
            }
        )
    resale_start = start + pd.Timedelta(hours=49)
    for b in range(farm.buyers):
        buyer = _wallet(rng)
        at = resale_start + pd.Timedelta(hours=b)
        for j in range(farm.tickets_each):
            i = b * farm.tickets_each + j
            rows.append(
                {
                    "transaction_id": f"farm-{farm.seed}-resale-{i:03d}",
                    "wallet_address": buyer,
                    "event_id": event,
                    "ticket_id": tickets[i],
                    "price_paid": round(face * farm.markup, 2),
                    "payment_method": f"card_b{b}" if farm.with_optional_fields else None,
                    "is_resale": True,
                    "status": "completed",
                    "timestamp": at + pd.Timedelta(minutes=3 * j + float(rng.random())),
                    "seller_address": seller,
                    "ip_address": ip,
                    "country": None,
                    "latitude": 40.4 if farm.with_optional_fields else None,
                    "longitude": -3.7 if farm.with_optional_fields else None,
                    "source": "import",
                }
            )
    frame = conform(pd.DataFrame(rows), TRANSACTION_COLUMNS)
    return frame, frame["is_resale"].to_numpy(dtype=bool)
