"""users: stored addresses with compatibility forms folded (NFKC), as logins now look them up

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 13:00:00

Addresses are now folded to NFKC before they are stored or looked up (fullwidth `U+FF41` is
`a`), so an address stored with such characters by an earlier version would no longer be
found at login. This brings those rows to the new form. A row whose folded form another
account already holds is left as it is: that pair is exactly the look-alike registration
the folding prevents, and the account that holds the plain spelling keeps it. Addresses
that are pure ASCII cannot change and are not touched.
"""

import logging
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")


def _folded(email: str) -> str:
    # models.normalize_email as of this revision (a migration keeps its own copy).
    return unicodedata.normalize("NFKC", email.strip()).lower()


# `migrate --sql` (no connection, so no Python over the rows): the same for every address
# whose folded form is ASCII, where PostgreSQL's lower() and Python's agree; the rare rest
# are left for an online upgrade.
_OFFLINE_SQL = """
UPDATE users u SET email = lower(normalize(u.email, NFKC))
WHERE u.email ~ '[^[:ascii:]]' AND normalize(u.email, NFKC) !~ '[^[:ascii:]]'
  AND normalize(u.email, NFKC) LIKE '%_@_%' AND normalize(u.email, NFKC) NOT LIKE '%@%@%'
  AND NOT EXISTS (SELECT 1 FROM users o WHERE o.email = lower(normalize(u.email, NFKC)))
"""


def upgrade() -> None:
    if context.is_offline_mode():
        op.execute(_OFFLINE_SQL)
        return
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, email FROM users WHERE email ~ '[^[:ascii:]]'"))
    kept = 0
    for user_id, email in rows.all():
        folded = _folded(email)
        if folded == email or folded.count("@") != 1:
            continue
        moved = bind.execute(
            sa.text(
                "UPDATE users SET email = :folded WHERE id = :id "
                "AND NOT EXISTS (SELECT 1 FROM users WHERE email = :folded)"
            ),
            {"folded": folded, "id": user_id},
        )
        kept += moved.rowcount == 0
    if kept:
        log.warning(
            "%d look-alike address(es) kept as stored: another account holds the folded form",
            kept,
        )


def downgrade() -> None:
    # The folded forms are valid spellings of the same mailboxes: nothing to undo.
    pass
