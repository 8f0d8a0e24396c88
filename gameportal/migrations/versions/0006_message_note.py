"""message note: what a successful delivery wants an operator to know

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 09:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable with no default: adding it rewrites nothing, whatever the queue's size.
    op.add_column("messages", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "note")
