"""Index runs by start time, the order of every runs list.

Runs are listed newest first (``modelyard runs list``, the UI's runs table); with this index the
first page of 100,000 runs is read in index order instead of sorting them all.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_runs_start_time", "runs", ["start_time"])


def downgrade() -> None:
    op.drop_index("ix_runs_start_time", table_name="runs")
