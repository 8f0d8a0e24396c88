"""queue: leaner indexes on messages

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 09:40:00.000000

Every row a message passes through (queued, claimed, sent) is a new tuple, and each new
tuple is added to every index whose predicate it meets. Most messages have no dedupe key,
and broadcasts no recipient, yet both indexes held an entry for each of those tuples:
NULLs are never looked up there, so they are left out.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("uq_messages_dedupe_key_open", table_name="messages")
    op.create_index(
        "uq_messages_dedupe_key_open",
        "messages",
        ["dedupe_key"],
        unique=True,
        postgresql_where=sa.text("dedupe_key IS NOT NULL AND status IN ('PENDING','PROCESSING')"),
    )
    op.drop_index("ix_messages_recipient", table_name="messages")
    op.create_index(
        "ix_messages_recipient",
        "messages",
        ["recipient_user_id", "id"],
        postgresql_where=sa.text("recipient_user_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_recipient", table_name="messages")
    op.create_index("ix_messages_recipient", "messages", ["recipient_user_id", "id"])
    op.drop_index("uq_messages_dedupe_key_open", table_name="messages")
    op.create_index(
        "uq_messages_dedupe_key_open",
        "messages",
        ["dedupe_key"],
        unique=True,
        postgresql_where=sa.text("status IN ('PENDING','PROCESSING')"),
    )
