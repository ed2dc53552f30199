"""canonical wallets: every stored address in its one spelling, duplicates merged

Until now a wallet of fewer than 40 hex digits was stored as sent (lower-cased), so one address could sit in
a table under several spellings (``0xdeadbeef`` and ``0x00…00deadbeef``) and a block-list entry missed the
others. From this revision every boundary stores ``ticketguard.wallets.canonical_wallet``'s form — ``0x`` +
40 lower-case hex digits, left-padded — and this migration rewrites what is already stored:

- ``transactions`` and ``transactions_archive`` (buyer and seller), ``security_responses.target`` of
  ``blacklist_wallet`` responses: each spelling rewritten in place;
- ``blacklisted_wallets`` and ``allowlisted_wallets`` (keyed by the address): the rows of one wallet merged
  into one — the earliest ``timestamp``, every distinct reason and actor (in time order, joined by "; "),
  and the longest cover (no expiry if any row had none, else the latest);
- ``wallet_graph_scores`` (keyed by snapshot and address): one row per wallet and snapshot, with the
  centralities summed (PageRank mass of nodes that were one wallet; the next snapshot recomputes it).

Values that are not addresses (an erasure pseudonym ``erased:…``) are left alone. No checksum is checked
here: these spellings were accepted when they were written. The reporting views (``kpi_hourly``,
``wallet_segments``) are derived: they catch up at their next refresh (``ticketguard views refresh``).
Downgrade leaves the data canonical (a canonical address is a valid spelling for older code too, and
merged rows cannot be told apart again).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The rule as of this revision (kept here: a migration must not change when application code does).
_SPELLING = re.compile(r"0[xX]([0-9a-fA-F]{1,40})")
_ADDED_BY_LENGTH = 64


def canonical(value: str | None) -> str | None:
    """The canonical spelling, or None when ``value`` is not an address."""
    match = _SPELLING.fullmatch(value or "")
    return None if match is None else "0x" + match.group(1).lower().rjust(40, "0")


def _not_canonical(column: str) -> str:
    # Portable (SQLite has no regex): wrong length, any upper-case letter, or another prefix.
    return f"({column} IS NOT NULL AND (length({column}) <> 42 OR {column} <> lower({column})))"


def _rewrite(conn: sa.Connection, table: str, column: str, where: str = "") -> int:
    """Rewrite every non-canonical spelling in ``table.column`` in place; returns the rows changed."""
    extra = f" AND {where}" if where else ""
    found = conn.execute(
        sa.text(f"SELECT DISTINCT {column} FROM {table} WHERE {_not_canonical(column)}{extra}")  # noqa: S608
    ).scalars()
    pairs = [{"old": old, "new": new} for old in found if (new := canonical(old)) is not None and new != old]
    if not pairs:
        return 0
    result = conn.execute(
        sa.text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old{extra}"),  # noqa: S608
        pairs,
    )
    return int(result.rowcount or 0)


def _merge_list(conn: sa.Connection, table: str) -> None:
    """One row per wallet in a block/allow list, merging the rows of every spelling."""
    t = sa.table(
        table,
        sa.column("wallet_address"),
        sa.column("reason"),
        sa.column("timestamp"),
        sa.column("added_by"),
        sa.column("expires_at"),
    )
    stale = conn.execute(sa.select(t).where(sa.text(_not_canonical("wallet_address")))).mappings().all()
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in stale:
        key = canonical(row["wallet_address"])
        if key is not None:
            groups[key].append(dict(row))
    for key, rows in groups.items():
        existing = conn.execute(sa.select(t).where(t.c.wallet_address == key)).mappings().first()
        if existing is not None:
            rows.append(dict(existing))
        rows.sort(key=lambda r: r["timestamp"])
        merged = {
            "wallet_address": key,
            "timestamp": rows[0]["timestamp"],
            "reason": _joined(r["reason"] for r in rows),
            "added_by": (_joined(r["added_by"] for r in rows) or None),
            "expires_at": None
            if any(r["expires_at"] is None for r in rows)
            else max(r["expires_at"] for r in rows),
        }
        if merged["added_by"] is not None:
            merged["added_by"] = merged["added_by"][:_ADDED_BY_LENGTH]
        olds = [r["wallet_address"] for r in rows]
        conn.execute(sa.delete(t).where(t.c.wallet_address.in_(olds)))
        conn.execute(sa.insert(t).values(**merged))


def _joined(values: Any) -> str | None:
    seen: list[str] = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return "; ".join(seen) or None


def _merge_graph_scores(conn: sa.Connection) -> None:
    t = sa.table(
        "wallet_graph_scores", sa.column("snapshot_at"), sa.column("wallet_address"), sa.column("centrality")
    )
    stale = conn.execute(sa.select(t).where(sa.text(_not_canonical("wallet_address")))).all()
    groups: dict[tuple[Any, str], list[tuple[str, float]]] = defaultdict(list)
    for snapshot_at, wallet, centrality in stale:
        key = canonical(wallet)
        if key is not None:
            groups[(snapshot_at, key)].append((wallet, float(centrality)))
    for (snapshot_at, key), rows in groups.items():
        existing = conn.execute(
            sa.select(t.c.centrality).where(t.c.snapshot_at == snapshot_at, t.c.wallet_address == key)
        ).scalar()
        total = sum(c for _, c in rows) + (float(existing) if existing is not None else 0.0)
        olds = [w for w, _ in rows] + [key]
        conn.execute(sa.delete(t).where(t.c.snapshot_at == snapshot_at, t.c.wallet_address.in_(olds)))
        conn.execute(sa.insert(t).values(snapshot_at=snapshot_at, wallet_address=key, centrality=total))


def upgrade() -> None:
    conn = op.get_bind()
    for table in ("transactions", "transactions_archive"):
        for column in ("wallet_address", "seller_address"):
            _rewrite(conn, table, column)
    _rewrite(conn, "security_responses", "target", where="action = 'blacklist_wallet'")
    for table in ("blacklisted_wallets", "allowlisted_wallets"):
        _merge_list(conn, table)
    _merge_graph_scores(conn)


def downgrade() -> None:
    pass  # data only: canonical spellings stay valid for the older code, merged rows cannot be split
