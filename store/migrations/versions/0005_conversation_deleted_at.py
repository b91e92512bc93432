"""Deleting a conversation can be undone for a short while: it is hidden at once and purged later.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "conversations", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        op.f("ix_conversations_deleted_at"), "conversations", ["deleted_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_conversations_deleted_at"), table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("deleted_at")
