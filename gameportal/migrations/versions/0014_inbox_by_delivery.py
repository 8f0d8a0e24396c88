"""in-app messages by delivery: live streams replay what was delivered after a point
(sent_at, id), not what was created after an id; a player's own, and the broadcasts every
inbox reads

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_inbox_recipient_delivered",
        "messages",
        ["recipient_user_id", "sent_at", "id"],
        postgresql_where=sa.text(
            "type = 'IN_APP' AND recipient_user_id IS NOT NULL AND status = 'SENT'"
        ),
    )
    op.create_index(
        "ix_messages_inbox_broadcast_delivered",
        "messages",
        ["sent_at", "id"],
        postgresql_where=sa.text(
            "type = 'IN_APP' AND recipient_user_id IS NULL AND status = 'SENT'"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_inbox_broadcast_delivered", table_name="messages")
    op.drop_index("ix_messages_inbox_recipient_delivered", table_name="messages")
