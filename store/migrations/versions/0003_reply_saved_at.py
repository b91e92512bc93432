"""Durable chat turns: when each message was last saved, and an index to find streaming replies.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("saved_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_messages_status"), "messages", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_messages_status"), table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("saved_at")
