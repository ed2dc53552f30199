"""events.facts_derived: an event whose capacity, face value or start the import derived from its sales

`ticketguard import` without an events file (and without the event_* columns) fills an event's capacity,
face value and start from the file's own sales: distinct tickets, median price, last sale + 1 hour. Those
values describe the whole file, so a feature reading them for an early sale would see later ones (issue 13:
a leak). From this revision such events are marked ``facts_derived = true``; every feature execution
(offline, SQL, in-memory state) treats their capacity, face value and start as unknown and takes the
point-in-time fallbacks (popularity 0, the mean of the event's earlier prices as reference price). The
columns stay filled (NOT NULL) for the dashboards. Existing rows are marked false: events imported before
this revision keep being used as they are (re-import the history to get point-in-time facts).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "events",
        sa.Column(
            "facts_derived",
            sa.Boolean(),
            nullable=False,
            server_default=sa.false(),
            comment="capacity, face value and start were derived by an import from its sales: features "
            "treat them as unknown (point-in-time)",
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("facts_derived")
