"""Player progress (the seed's UserProgress and Achievement), the game servers' API keys,
per-period leaderboard scores and the idempotency record of progress updates."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gameportal.models.base import Base, CreatedAtMixin, IdMixin

LEADERBOARD_PERIODS = ("week", "month")  # "all" is user_progress.points itself
LEVEL_BASES = ("experience", "points")


class GameApiKey(IdMixin, CreatedAtMixin, Base):
    """A game server's credential: acts on its own game only. Only the SHA-256 of the key
    is stored (the key carries 256 random bits, so a fast hash is enough: no argon2 on
    every game-server request); the prefix is kept to tell keys apart in lists."""

    __tablename__ = "game_api_keys"

    game_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("content.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    last_used_at: Mapped[datetime | None]


class Achievement(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "achievements"
    __table_args__ = (
        UniqueConstraint("game_id", "key", name="uq_achievements_game_id_key"),
        CheckConstraint("points >= 0", name="points_not_negative"),
    )

    game_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("content.id", ondelete="CASCADE"))
    # Stable per game: what game servers name it by.
    key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    media: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(Uuid), server_default=text("ARRAY[]::uuid[]")
    )
    # Reward added to the player's points on unlock.
    points: Mapped[int] = mapped_column(server_default=text("0"))
    # Title, description and media withheld from players until they unlock it.
    hidden: Mapped[bool] = mapped_column(server_default=text("false"))
    # Optional automatic unlock, checked on every progress update:
    # {"type": "level" | "points", "min": N} | {"type": "stat", "stat": name, "min": N}.
    criteria: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class UserProgress(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "user_progress"
    __table_args__ = (
        UniqueConstraint("user_id", "game_id", name="uq_user_progress_user_id_game_id"),
        # The all-time board's order: most points first, ties to whoever got there first.
        Index(
            "ix_user_progress_board",
            "game_id",
            text("points DESC"),
            "points_reached_at",
            "user_id",
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    game_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("content.id", ondelete="CASCADE"))
    level: Mapped[int] = mapped_column(server_default=text("1"))
    experience: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    points: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # When `points` last changed: the leaderboard's tie-break.
    points_reached_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    # Named integer counters a game server adds to ({"kills": 12, ...}).
    stats: Mapped[dict[str, int]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # Campaign ids, filled by live operations; read-only for progress.
    personalized_offers: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(Uuid), server_default=text("ARRAY[]::uuid[]")
    )
    last_activity_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class AchievementUnlock(Base):
    """An achievement a player has: the primary key makes each unlock happen once."""

    __tablename__ = "achievement_unlocks"
    __table_args__ = (
        # Unlock counts per achievement (the catalogue's unlock rate).
        Index("ix_achievement_unlocks_achievement_id", "achievement_id"),
        # A player's unlocks in one game.
        Index("ix_achievement_unlocks_user_game", "user_id", "game_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    achievement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("achievements.id", ondelete="CASCADE"), primary_key=True
    )
    game_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("content.id", ondelete="CASCADE"))
    unlocked_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class ProgressUpdate(Base):
    """The first result of each idempotency key: a game server's retry gets it back
    instead of applying the update twice. Old keys are pruned."""

    __tablename__ = "progress_updates"
    __table_args__ = (Index("ix_progress_updates_created_at", "created_at"),)

    game_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("content.id", ondelete="CASCADE"), primary_key=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # SHA-256 of what was asked (player and changes): the same key with another request
    # is refused instead of answered with the first one's result.
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    result: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class LeaderboardScore(Base):
    """Points gained in one ISO week or calendar month (UTC), per player and game. A new
    period is a new key, so boards start empty at their boundary with nothing deleted,
    and past periods stay readable."""

    __tablename__ = "leaderboard_scores"
    __table_args__ = (
        CheckConstraint("period IN ('week','month')", name="period_known"),
        Index(
            "ix_leaderboard_scores_board",
            "game_id",
            "period",
            "period_start",
            text("points DESC"),
            "reached_at",
            "user_id",
        ),
        Index("ix_leaderboard_scores_user_id", "user_id"),
    )

    game_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("content.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[str] = mapped_column(String(5), primary_key=True)
    period_start: Mapped[date] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    points: Mapped[int] = mapped_column(BigInteger)
    reached_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class GameLevels(Base):
    """A game's level thresholds: with them the level follows from experience or points
    (thresholds[i] is what level i + 2 needs); without, game servers set the level."""

    __tablename__ = "game_levels"
    __table_args__ = (CheckConstraint("basis IN ('experience','points')", name="basis_known"),)

    game_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("content.id", ondelete="CASCADE"), primary_key=True
    )
    basis: Mapped[str] = mapped_column(String(10))
    thresholds: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
