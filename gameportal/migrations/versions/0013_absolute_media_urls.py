"""absolute media URLs: media stored with a path (`/api/v1/media/...`, local storage with
no GAMEPORTAL_MEDIA_PUBLIC_URL) and content HTML linking media by path get the public base
URL in front, as new uploads and renders now do

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _bases() -> tuple[str, str]:
    """The deployment's settings, as the app reads them: the public base URL, and where
    media routes are reached (a CDN in front of local media, or that same base URL)."""
    from gameportal.config import Settings
    from gameportal.content.media.storage import media_route_base

    settings = Settings()
    return settings.public_base_url.rstrip("/"), media_route_base(settings).rstrip("/")


def upgrade() -> None:
    base, media_base = _bases()
    # A path, never a protocol-relative `//host/...`.
    op.execute(
        sa.text(
            "UPDATE media_assets SET url = :base || url WHERE url LIKE '/%' AND url NOT LIKE '//%'"
        ).bindparams(base=base)
    )
    op.execute(
        sa.text(
            """
            UPDATE media_assets m SET renditions = (
                SELECT jsonb_agg(
                    CASE WHEN r->>'url' LIKE '/%' AND r->>'url' NOT LIKE '//%'
                         THEN jsonb_set(r, '{url}', to_jsonb(:base || (r->>'url')))
                         ELSE r END
                    ORDER BY n)
                FROM jsonb_array_elements(m.renditions) WITH ORDINALITY AS e(r, n)
            )
            WHERE EXISTS (
                SELECT 1 FROM jsonb_array_elements(m.renditions) r
                WHERE r->>'url' LIKE '/%' AND r->>'url' NOT LIKE '//%'
            )
            """
        ).bindparams(base=base)
    )
    # The sanitiser writes every attribute in double quotes. A new version: the HTML
    # changed, so the ETag a client holds must not match it any more.
    op.execute(
        sa.text(
            """
            UPDATE content SET
                html = replace(replace(html,
                    'src="/api/v1/media/', 'src="' || :media || '/api/v1/media/'),
                    'href="/api/v1/media/', 'href="' || :media || '/api/v1/media/'),
                version = version + 1
            WHERE html LIKE '%src="/api/v1/media/%' OR html LIKE '%href="/api/v1/media/%'
            """
        ).bindparams(media=media_base)
    )


def downgrade() -> None:
    # Absolute URLs work with the earlier code too; which were paths is not known.
    pass
