"""media: a FAILED status for assets whose processing job gave up

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 12:45:00

A processing job that ends FAILED (storage unwritable, the worker out of retries) left its
asset PROCESSING for good. FAILED is distinct from REJECTED: the upload may be fine and
uploading it again may work; `reject_reason` holds why, for both.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "status IN ('UPLOADING','PROCESSING','READY','REJECTED')"
_NEW = "status IN ('UPLOADING','PROCESSING','READY','REJECTED','FAILED')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_media_assets_status_known"), "media_assets", type_="check")
    op.create_check_constraint(op.f("ck_media_assets_status_known"), "media_assets", _NEW)


def downgrade() -> None:
    op.execute("UPDATE media_assets SET status = 'REJECTED' WHERE status = 'FAILED'")
    op.drop_constraint(op.f("ck_media_assets_status_known"), "media_assets", type_="check")
    op.create_check_constraint(
        op.f("ck_media_assets_status_known"), "media_assets", _NEW.replace(",'FAILED'", "")
    )
