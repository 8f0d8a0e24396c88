"""Live operations: the seed's ABRule (a variant), MarketingCampaign and ABExperimentLog,
plus each campaign's IP ranges as `cidr` rows (the seed keeps them in `targetingRules`)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, CIDR, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gameportal.models.base import Base, CreatedAtMixin, IdMixin

DEVICE_TYPES = ("MOBILE", "DESKTOP", "OTHER")


class ABRule(IdMixin, CreatedAtMixin, Base):
    """One variant a campaign may assign: `rule` holds its `weight`, the `payload` handed
    to the client and optional `contentIds`."""

    __tablename__ = "ab_rules"
    __table_args__ = (
        CheckConstraint("start_at IS NULL OR end_at IS NULL OR start_at < end_at", name="window"),
    )

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    start_at: Mapped[datetime | None]
    end_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    rule: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    # Bumped on every change: the ETag / If-Match of the admin API.
    version: Mapped[int] = mapped_column(server_default=text("1"))


class MarketingCampaign(IdMixin, CreatedAtMixin, Base):
    """A campaign: who it targets (`targeting_rules`: countries, ipRanges, deviceTypes,
    languages, segment), which variants it splits them into (`ab_variants`, ABRule ids in
    order, the first is the control) and which content it promotes."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("start_at IS NULL OR end_at IS NULL OR start_at < end_at", name="window"),
        CheckConstraint("coverage >= 0 AND coverage <= 1", name="coverage_share"),
        Index("ix_campaigns_exclusion_group", "exclusion_group"),
    )

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    start_at: Mapped[datetime | None]
    end_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(server_default=text("false"))
    targeting_rules: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    content_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(Uuid), server_default=text("ARRAY[]::uuid[]")
    )
    ab_variants: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(Uuid), server_default=text("ARRAY[]::uuid[]")
    )
    # Share of the matching players entered (GrowthBook's coverage).
    coverage: Mapped[float] = mapped_column(Float, server_default=text("1"))
    # Mixed into the assignment hash: two campaigns with different seeds split the same
    # players independently. Defaults to the campaign's id.
    hash_seed: Mapped[str] = mapped_column(String(64))
    # Campaigns in one group never share a player (GrowthBook's namespaces).
    exclusion_group: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    version: Mapped[int] = mapped_column(server_default=text("1"))


class CampaignIpRange(Base):
    """A campaign's `targetingRules.ipRanges`, one `cidr` row each, GiST-indexed: the
    database's own view of which campaigns an address falls in (preview, admin filters);
    the hot path uses an in-process structure built from these rows."""

    __tablename__ = "campaign_ip_ranges"
    __table_args__ = (
        Index(
            "ix_campaign_ip_ranges_ip_range",
            "ip_range",
            postgresql_using="gist",
            postgresql_ops={"ip_range": "inet_ops"},
        ),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    ip_range: Mapped[str] = mapped_column(CIDR, primary_key=True)


class ABExperimentLog(IdMixin, Base):
    """One row per player and campaign: the variant assigned, when, and the conversion.

    A visitor not logged in is keyed by `anonymous_id` (the client's X-Anonymous-Id) until
    they log in or register, when the row passes to `user_id`."""

    __tablename__ = "ab_experiment_log"
    __table_args__ = (
        CheckConstraint("user_id IS NOT NULL OR anonymous_id IS NOT NULL", name="someone"),
        # Exactly one row per player and campaign, whatever the concurrency.
        Index(
            "uq_ab_experiment_log_campaign_user",
            "campaign_id",
            "user_id",
            unique=True,
            postgresql_where=text("user_id IS NOT NULL"),
        ),
        Index(
            "uq_ab_experiment_log_campaign_anonymous",
            "campaign_id",
            "anonymous_id",
            unique=True,
            postgresql_where=text("user_id IS NULL"),
        ),
        # Campaigns of one exclusion group never share a player.
        Index(
            "uq_ab_experiment_log_group_user",
            "exclusion_group",
            "user_id",
            unique=True,
            postgresql_where=text("exclusion_group IS NOT NULL AND user_id IS NOT NULL"),
        ),
        Index(
            "uq_ab_experiment_log_group_anonymous",
            "exclusion_group",
            "anonymous_id",
            unique=True,
            postgresql_where=text("exclusion_group IS NOT NULL AND user_id IS NULL"),
        ),
        # A player's assignments in one lookup (the hot path).
        Index("ix_ab_experiment_log_user", "user_id", postgresql_where=text("user_id IS NOT NULL")),
        # A visitor's assignments in one lookup, and what passes to the account at login.
        Index(
            "ix_ab_experiment_log_anonymous",
            "anonymous_id",
            postgresql_where=text("user_id IS NULL"),
        ),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    anonymous_id: Mapped[uuid.UUID | None]
    variant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ab_rules.id", ondelete="RESTRICT"))
    exclusion_group: Mapped[str | None] = mapped_column(String(64))
    assigned_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    # The seed's conversion timestamp, set once; with the event's name and value if given.
    conversion_event: Mapped[datetime | None]
    conversion_name: Mapped[str | None] = mapped_column(String(64))
    conversion_value: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))


class ABExperimentCount(Base):
    """Players assigned and conversions per campaign, variant and UTC day, for results:
    kept by statement-level triggers on `ab_experiment_log` (migration 0011) in the same
    transaction as every insert, update and delete there, so they always equal a count of
    the log. An assignment counts on the day of `assigned_at`, a conversion on the day of
    `conversion_event`. Each writer adds to the row of its `slot` (its backend's process id
    modulo 16), so concurrent new assignments do not wait on one row's lock; a reader sums
    the slots."""

    __tablename__ = "ab_experiment_counts"

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    variant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ab_rules.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(primary_key=True)
    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    assigned: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    conversions: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
