"""Record which process runs a run, and index runs by status.

Each new top-level run looks for RUNNING runs of its machine whose process died
(``tracking.liveness``): ``process_host`` and ``process_pid`` say where to look, the status
index keeps the lookup cheap however many runs the store holds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("process_host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("process_pid", sa.String(length=64), nullable=True))
    op.create_index("ix_runs_status", "runs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_runs_status", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("process_pid")
        batch.drop_column("process_host")
