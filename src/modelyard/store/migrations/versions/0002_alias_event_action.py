"""Record what each alias event did (set, delete, rollback) so rollbacks can walk back.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("alias_events") as batch:
        batch.add_column(
            sa.Column("action", sa.String(length=16), nullable=False, server_default="set")
        )
    op.execute("UPDATE alias_events SET action = 'delete' WHERE to_version IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("alias_events") as batch:
        batch.drop_column("action")
