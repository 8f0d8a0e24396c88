"""progress: game API keys, achievements and unlocks, user progress, level thresholds,
per-period leaderboard scores and the idempotency record of progress updates

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 12:32:43.522554
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "achievements",
        sa.Column("game_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "media",
            postgresql.ARRAY(sa.Uuid()),
            server_default=sa.text("ARRAY[]::uuid[]"),
            nullable=False,
        ),
        sa.Column("points", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("hidden", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("criteria", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("points >= 0", name=op.f("ck_achievements_points_not_negative")),
        sa.ForeignKeyConstraint(
            ["game_id"],
            ["content.id"],
            name=op.f("fk_achievements_game_id_content"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_achievements")),
        sa.UniqueConstraint("game_id", "key", name="uq_achievements_game_id_key"),
    )
    op.create_table(
        "game_api_keys",
        sa.Column("game_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_game_api_keys_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["game_id"],
            ["content.id"],
            name=op.f("fk_game_api_keys_game_id_content"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_game_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_game_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_game_api_keys_game_id"), "game_api_keys", ["game_id"], unique=False)
    op.create_table(
        "game_levels",
        sa.Column("game_id", sa.UUID(), nullable=False),
        sa.Column("basis", sa.String(length=10), nullable=False),
        sa.Column("thresholds", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "basis IN ('experience','points')", name=op.f("ck_game_levels_basis_known")
        ),
        sa.ForeignKeyConstraint(
            ["game_id"],
            ["content.id"],
            name=op.f("fk_game_levels_game_id_content"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("game_id", name=op.f("pk_game_levels")),
    )
    op.create_table(
        "leaderboard_scores",
        sa.Column("game_id", sa.UUID(), nullable=False),
        sa.Column("period", sa.String(length=5), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column(
            "reached_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "period IN ('week','month')", name=op.f("ck_leaderboard_scores_period_known")
        ),
        sa.ForeignKeyConstraint(
            ["game_id"],
            ["content.id"],
            name=op.f("fk_leaderboard_scores_game_id_content"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_leaderboard_scores_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "game_id", "period", "period_start", "user_id", name=op.f("pk_leaderboard_scores")
        ),
    )
    op.create_index(
        "ix_leaderboard_scores_board",
        "leaderboard_scores",
        [
            "game_id",
            "period",
            "period_start",
            sa.literal_column("points DESC"),
            "reached_at",
            "user_id",
        ],
        unique=False,
    )
    op.create_index(
        "ix_leaderboard_scores_user_id", "leaderboard_scores", ["user_id"], unique=False
    )
    op.create_table(
        "progress_updates",
        sa.Column("game_id", sa.UUID(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("request_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["game_id"],
            ["content.id"],
            name=op.f("fk_progress_updates_game_id_content"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_progress_updates_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("game_id", "idempotency_key", name=op.f("pk_progress_updates")),
    )
    op.create_index(
        "ix_progress_updates_created_at", "progress_updates", ["created_at"], unique=False
    )
    op.create_table(
        "user_progress",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("game_id", sa.UUID(), nullable=False),
        sa.Column("level", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("experience", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("points", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "points_reached_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "stats",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "personalized_offers",
            postgresql.ARRAY(sa.Uuid()),
            server_default=sa.text("ARRAY[]::uuid[]"),
            nullable=False,
        ),
        sa.Column(
            "last_activity_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["game_id"],
            ["content.id"],
            name=op.f("fk_user_progress_game_id_content"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_progress_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_progress")),
        sa.UniqueConstraint("user_id", "game_id", name="uq_user_progress_user_id_game_id"),
    )
    op.create_index(
        "ix_user_progress_board",
        "user_progress",
        ["game_id", sa.literal_column("points DESC"), "points_reached_at", "user_id"],
        unique=False,
    )
    op.create_table(
        "achievement_unlocks",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("achievement_id", sa.UUID(), nullable=False),
        sa.Column("game_id", sa.UUID(), nullable=False),
        sa.Column(
            "unlocked_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["achievement_id"],
            ["achievements.id"],
            name=op.f("fk_achievement_unlocks_achievement_id_achievements"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["game_id"],
            ["content.id"],
            name=op.f("fk_achievement_unlocks_game_id_content"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_achievement_unlocks_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "achievement_id", name=op.f("pk_achievement_unlocks")),
    )
    op.create_index(
        "ix_achievement_unlocks_achievement_id",
        "achievement_unlocks",
        ["achievement_id"],
        unique=False,
    )
    op.create_index(
        "ix_achievement_unlocks_user_game",
        "achievement_unlocks",
        ["user_id", "game_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_achievement_unlocks_user_game", table_name="achievement_unlocks")
    op.drop_index("ix_achievement_unlocks_achievement_id", table_name="achievement_unlocks")
    op.drop_table("achievement_unlocks")
    op.drop_index("ix_user_progress_board", table_name="user_progress")
    op.drop_table("user_progress")
    op.drop_index("ix_progress_updates_created_at", table_name="progress_updates")
    op.drop_table("progress_updates")
    op.drop_index("ix_leaderboard_scores_user_id", table_name="leaderboard_scores")
    op.drop_index("ix_leaderboard_scores_board", table_name="leaderboard_scores")
    op.drop_table("leaderboard_scores")
    op.drop_table("game_levels")
    op.drop_index(op.f("ix_game_api_keys_game_id"), table_name="game_api_keys")
    op.drop_table("game_api_keys")
    op.drop_table("achievements")
