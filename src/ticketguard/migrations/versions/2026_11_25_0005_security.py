"""security: API clients, IP blocks (hashed addresses), automated responses of the correlation rules

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False, comment="public part of the key"),
        sa.Column(
            "key_hash", sa.String(length=64), nullable=False, comment="HMAC-SHA256(SECURITY_PEPPER, key), hex"
        ),
        sa.Column("scopes", sa.String(length=200), nullable=False, comment="comma-separated: score, metrics"),
        sa.Column("created_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("created_by", sa.String(length=64)),
        sa.Column("revoked_at", _TS),
        sa.Column("revoked_by", sa.String(length=64)),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("name", name=op.f("uq_api_clients_name")),
        sa.UniqueConstraint("key_prefix", name=op.f("uq_api_clients_key_prefix")),
    )
    op.create_table(
        "ip_blocks",
        sa.Column(
            "ip_hash", sa.String(length=45), nullable=False, comment="keyed hash token of the address (ip:…)"
        ),
        sa.Column("ip_masked", sa.String(length=45), comment="for people: 203.0.113.x"),
        sa.Column("reason", sa.Text()),
        sa.Column("added_by", sa.String(length=64), comment="admin user or rule that added it"),
        sa.Column("created_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", _TS, comment="NULL: until removed"),
        sa.PrimaryKeyConstraint("ip_hash", name=op.f("pk_ip_blocks")),
    )
    op.create_index("idx_ip_blocks_expires_at", "ip_blocks", ["expires_at"])
    op.create_table(
        "security_responses",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column(
            "action",
            sa.String(length=32),
            nullable=False,
            comment="block_ip, blacklist_wallet, tighten_global_limit",
        ),
        sa.Column(
            "target",
            sa.String(length=128),
            nullable=False,
            comment="ip hash token, wallet address or 'global'",
        ),
        sa.Column("params", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")),
        sa.Column("created_at", _TS, server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", _TS),
        sa.Column("reverted_at", _TS),
        sa.Column("reverted_by", sa.String(length=64)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_responses")),
    )
    op.create_index(
        "idx_security_responses_rule_target", "security_responses", ["rule", "target", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("idx_security_responses_rule_target", table_name="security_responses")
    op.drop_table("security_responses")
    op.drop_index("idx_ip_blocks_expires_at", table_name="ip_blocks")
    op.drop_table("ip_blocks")
    op.drop_table("api_clients")
