"""The example request `ticketguard serve api --example` prints: a purchase by a wallet with a history, for
an event on sale now, so its answer shows features that mean something (the wallet's age, the event's
popularity, its recent activity) — not the zeros of a wallet and event the database has never seen."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, select

from ticketguard import tables

RECENT = timedelta(days=7)
ESTABLISHED = timedelta(days=14)


def example_request(engine: Engine, now: datetime) -> dict[str, Any] | None:
    """A realistic request from the stored history, or None when there is no history to draw it from."""
    x, ev, labels, black = tables.transactions, tables.events, tables.fraud_labels, tables.blacklisted_wallets
    with engine.connect() as conn:
        # The event on sale now with the most sales in the last week.
        event = conn.execute(
            select(ev.c.event_id, ev.c.face_value)
            .join(x, x.c.event_id == ev.c.event_id)
            .where(
                ev.c.on_sale_at <= now, ev.c.starts_at > now + timedelta(days=1), x.c.timestamp > now - RECENT
            )
            .group_by(ev.c.event_id, ev.c.face_value)
            .order_by(func.count().desc(), ev.c.event_id)
            .limit(1)
        ).first()
        if event is None:
            return None
        # An ordinary returning buyer: established, a few purchases, the most recently active of them, never
        # involved in fraud, not on the blacklist.
        fraud = select(x.c.wallet_address).join(labels, labels.c.transaction_id == x.c.transaction_id)
        fraud = fraud.where(labels.c.is_fraud)
        wallet = conn.execute(
            select(x.c.wallet_address)
            .where(
                x.c.timestamp < now,
                x.c.wallet_address.not_in(fraud),
                x.c.wallet_address.not_in(select(black.c.wallet_address)),
            )
            .group_by(x.c.wallet_address)
            .having(
                and_(
                    func.min(x.c.timestamp) < now - ESTABLISHED,
                    func.max(x.c.timestamp) > now - RECENT,
                    func.count().between(3, 20),
                )
            )
            .order_by(func.max(x.c.timestamp).desc(), x.c.wallet_address)
            .limit(1)
        ).scalar()
        if wallet is None:
            return None
        last = conn.execute(
            select(x.c.payment_method, x.c.ip_address)
            .where(x.c.wallet_address == wallet, x.c.timestamp < now)
            .order_by(x.c.timestamp.desc())
            .limit(1)
        ).one()
    body: dict[str, Any] = {
        "transaction_id": f"demo-{now:%Y%m%d%H%M%S}",
        "wallet_address": wallet,
        "ticket_id": f"{event.event_id}-demo",
        "event_id": event.event_id,
        "price_paid": float(event.face_value),
    }
    if last.payment_method:
        body["payment_method"] = last.payment_method
    if last.ip_address:
        body["ip_address"] = last.ip_address
    return body
