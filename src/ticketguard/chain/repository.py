"""The SQL of the chain ETL: cursor, block-hash checkpoints, idempotent row loads, orphan deletion.

Every function runs inside the caller's transaction; the pipeline commits a batch's rows, its
checkpoint and the cursor move together.

Checkpoints (the hash of the last block of each committed batch, the newest `keep` of them) live in
`chain_cursor` too, as rows named `<cursor>@<block>`: they are what a rewind after a reorganisation
searches for the newest block both the database and the chain still agree on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, false, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ticketguard import tables
from ticketguard.chain.decode import CHAIN_SOURCE

cursor_table = tables.chain_cursor
CHECKPOINT_SEPARATOR = "@"
BLOCK_DIGITS = 20  # zero-padded so checkpoint names sort like their block numbers


@dataclass(frozen=True)
class Cursor:
    name: str
    last_block: int  # start block - 1 before the first batch
    last_block_hash: str | None
    updated_at: datetime


@dataclass(frozen=True)
class Checkpoint:
    block: int
    block_hash: str | None  # None: the anchor before the start block, which matches any chain


def _insert(conn: Connection, table: Any) -> postgresql.Insert | sqlite.Insert:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the chain ETL supports PostgreSQL and SQLite, not {dialect}")


def _now() -> datetime:
    return datetime.now(UTC)


def checkpoint_prefix(cursor_name: str) -> str:
    return f"{cursor_name}{CHECKPOINT_SEPARATOR}"


def get_cursor(conn: Connection, name: str) -> Cursor | None:
    row = conn.execute(select(cursor_table).where(cursor_table.c.name == name)).mappings().first()
    if row is None:
        return None
    return Cursor(row["name"], row["last_block"], row["last_block_hash"], row["updated_at"])


def ensure_cursor(conn: Connection, name: str, *, before_block: int) -> Cursor:
    """The cursor named `name`, created just before `before_block` when it does not exist yet."""
    conn.execute(
        _insert(conn, cursor_table)
        .values(name=name, last_block=before_block - 1, last_block_hash=None, updated_at=_now())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    cursor = get_cursor(conn, name)
    assert cursor is not None
    return cursor


def move_cursor(
    conn: Connection, name: str, *, expected_block: int, block: int, block_hash: str | None
) -> bool:
    """Compare-and-set: False when another run moved the cursor since `expected_block` was read."""
    result = conn.execute(
        update(cursor_table)
        .where(and_(cursor_table.c.name == name, cursor_table.c.last_block == expected_block))
        .values(last_block=block, last_block_hash=block_hash, updated_at=_now())
    )
    return result.rowcount == 1


def add_checkpoint(conn: Connection, name: str, checkpoint: Checkpoint, *, keep: int) -> None:
    prefix = checkpoint_prefix(name)
    values = {
        "name": f"{prefix}{checkpoint.block:0{BLOCK_DIGITS}d}",
        "last_block": checkpoint.block,
        "last_block_hash": checkpoint.block_hash,
        "updated_at": _now(),
    }
    stmt = _insert(conn, cursor_table).values(**values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"last_block_hash": stmt.excluded.last_block_hash, "updated_at": stmt.excluded.updated_at},
        )
    )
    newest = (
        select(cursor_table.c.last_block)
        .where(cursor_table.c.name.startswith(prefix, autoescape=True))
        .order_by(cursor_table.c.last_block.desc())
        .offset(keep - 1)
        .limit(1)
        .scalar_subquery()
    )
    conn.execute(
        delete(cursor_table).where(
            cursor_table.c.name.startswith(prefix, autoescape=True), cursor_table.c.last_block < newest
        )
    )


def checkpoints(conn: Connection, name: str) -> list[Checkpoint]:
    """Newest first."""
    rows = conn.execute(
        select(cursor_table.c.last_block, cursor_table.c.last_block_hash)
        .where(cursor_table.c.name.startswith(checkpoint_prefix(name), autoescape=True))
        .order_by(cursor_table.c.last_block.desc())
    )
    return [Checkpoint(block, block_hash) for block, block_hash in rows]


def insert_transactions(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert chain rows, skipping any (tx hash, log index) already stored; returns the new ones."""
    if not rows:
        return []
    table = tables.transactions
    stmt = (
        _insert(conn, table)
        .on_conflict_do_nothing(index_elements=["chain_tx_hash", "chain_log_index"])
        .returning(table.c.transaction_id)
    )
    new = {str(tid) for tid in conn.execute(stmt, list(rows)).scalars()}
    return [row for row in rows if row["transaction_id"] in new]


def upsert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert events or refresh what the chain owns of them (organiser, capacity, price, times).

    A name, venue or city that an import gave the same event id is kept: the chain does not know them.
    """
    if not rows:
        return 0
    table = tables.events
    # One statement must not touch a row twice (PostgreSQL refuses): the last log wins.
    unique = list({row["event_id"]: row for row in rows}.values())
    stmt = _insert(conn, table)
    owned = ("organizer_id", "capacity", "face_value", "on_sale_at", "starts_at")
    # The chain's facts are real: an event an import had to derive facts for (issue 13) is derived no more.
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["event_id"],
            set_={**{name: stmt.excluded[name] for name in owned}, "facts_derived": false()},
        ),
        unique,
    )
    return len(unique)


def delete_after(conn: Connection, name: str, block: int) -> int:
    """Forget everything the ETL loaded from blocks after `block`; returns the transactions deleted.

    Chain rows are matched by source and block number: one contract per database (the one
    CONTRACT_ADDRESS), so every chain row belongs to this cursor.
    """
    table = tables.transactions
    deleted = conn.execute(
        delete(table).where(table.c.source == CHAIN_SOURCE, table.c.block_number > block)
    ).rowcount
    conn.execute(
        delete(cursor_table).where(
            cursor_table.c.name.startswith(checkpoint_prefix(name), autoescape=True),
            cursor_table.c.last_block > block,
        )
    )
    return int(deleted)


def allow_long_statements(conn: Connection) -> None:
    """Lift the request path's statement timeout for this transaction only: a batch of thousands of
    rows, or a rewind deleting them, legitimately takes longer than a scoring query may."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")


def count_chain_transactions(conn: Connection) -> int:
    table = tables.transactions
    return int(conn.execute(select(func.count()).where(table.c.source == CHAIN_SOURCE)).scalar_one())
