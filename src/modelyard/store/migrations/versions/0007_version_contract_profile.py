"""A version's data contract and reference profile, and the registry's own id.

``model_versions.contract_sha256`` and ``model_versions.profile_sha256`` address the contract
(canonical JSON) and the reference profile (``Profile.to_bytes``) of a version in the artifact
store, so they are read back hash-verified like the package files, with no path convention.
``store_info`` holds facts about the store itself as key/value rows; ``registry_id`` (made on
first use) names the registry in the git tags that mirror it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("contract_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("profile_sha256", sa.String(length=64), nullable=True))
    op.create_table(
        "store_info",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=8000), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_store_info")),
    )


def downgrade() -> None:
    op.drop_table("store_info")
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35): a batch copy of model_versions
    # would drop the table its files and tags reference, which foreign keys refuse
    op.drop_column("model_versions", "profile_sha256")
    op.drop_column("model_versions", "contract_sha256")
