"""list change notifications: on PostgreSQL, a commit that changes a block/allow list sends a NOTIFY

The API workers keep the lists in memory; they LISTEN on ``ticketguard_lists`` and reload within
milliseconds of any change — from the admin API, the CLI, an automated response or plain SQL. SQLite has no
such channel: there the workers re-read the lists every FEATURE_STATE_REFRESH_SECONDS.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "ticketguard_lists"
TABLES = ("blacklisted_wallets", "allowlisted_wallets", "ip_blocks")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION ticketguard_lists_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
            RETURN NULL;
        END $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ticketguard_lists_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify ON {table}")
    op.execute("DROP FUNCTION IF EXISTS ticketguard_lists_changed()")
