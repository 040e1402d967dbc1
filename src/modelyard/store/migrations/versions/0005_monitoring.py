"""Monitoring results per (version, window) and the retraining triggers they caused.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "monitor_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("window_end", sa.Float(), nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("n_rows", sa.BigInteger(), nullable=False),
        sa.Column("drift_score", sa.Float(), nullable=True),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_results")),
        sa.UniqueConstraint(
            "model",
            "version",
            "window_start",
            "window_end",
            name=op.f("uq_monitor_results_model_version_window_start_window_end"),
        ),
    )
    op.create_index(
        "ix_monitor_results_model_version_window_end",
        "monitor_results",
        ["model", "version", "window_end"],
    )
    op.create_table(
        "monitor_triggers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=True),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("window_end", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("new_version", sa.Integer(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["monitor_results.id"],
            name=op.f("fk_monitor_triggers_result_id_monitor_results"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_triggers")),
    )
    op.create_index("ix_monitor_triggers_model_at", "monitor_triggers", ["model", "at"])


def downgrade() -> None:
    op.drop_index("ix_monitor_triggers_model_at", table_name="monitor_triggers")
    op.drop_table("monitor_triggers")
    op.drop_index("ix_monitor_results_model_version_window_end", table_name="monitor_results")
    op.drop_table("monitor_results")
