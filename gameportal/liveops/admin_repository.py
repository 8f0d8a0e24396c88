"""SQL of the marketers' API: ORM statements in the request's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    cast,
    delete,
    func,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.ext.asyncio import AsyncSession

from gameportal.liveops import LIVEOPS_CHANNEL
from gameportal.models import (
    ABExperimentLog,
    ABRule,
    Achievement,
    CampaignIpRange,
    Content,
    MarketingCampaign,
)

_NOTIFY = text("SELECT pg_notify(:channel, :id)")
# Marketers' writes take turns (they are few): a rule's weight checked against the
# campaigns that use it, or a rule deleted while a campaign takes it up, then never race.
WRITES_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('gameportal.liveops.admin', 0))"
_WRITES_LOCK = text(WRITES_LOCK_SQL)


async def serialize_writes(session: AsyncSession) -> None:
    """Held until the transaction ends; each statement after it sees every earlier write."""
    await session.execute(_WRITES_LOCK)


async def notify_changed(session: AsyncSession, changed_id: uuid.UUID) -> None:
    """Every API process reloads its campaigns when this commits (NOTIFY is delivered on
    commit, and not at all on rollback)."""
    await session.execute(_NOTIFY, {"channel": LIVEOPS_CHANNEL, "id": str(changed_id)})


# --- what campaigns and rules refer to -------------------------------------------------------


async def content_types(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The type of each content item that exists. KEY SHARE-locked until commit, so none
    can vanish under what is being attached to it."""
    if not ids:
        return {}
    rows = await session.execute(
        select(Content.id, Content.type)
        .where(Content.id.in_(list(ids)))
        .with_for_update(key_share=True)
    )
    return {row.id: row.type for row in rows}


async def achievement_exists(session: AsyncSession, game_id: uuid.UUID, key: str) -> bool:
    found = await session.scalar(
        select(Achievement.id)
        .where(Achievement.game_id == game_id, Achievement.key == key)
        .with_for_update(key_share=True)
    )
    return found is not None


async def rules(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ABRule]:
    if not ids:
        return {}
    rows = await session.scalars(select(ABRule).where(ABRule.id.in_(list(ids))))
    return {rule.id: rule for rule in rows}


async def campaigns_using(
    session: AsyncSession, rule_id: uuid.UUID, *, limit: int | None = None
) -> list[MarketingCampaign]:
    query = (
        select(MarketingCampaign)
        .where(MarketingCampaign.ab_variants.contains([rule_id]))
        .order_by(MarketingCampaign.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(await session.scalars(query))


async def has_players(session: AsyncSession, campaign_id: uuid.UUID) -> bool:
    """Whether anyone (player or visitor) was assigned a variant in the campaign."""
    found = await session.scalar(
        select(
            select(ABExperimentLog.id).where(ABExperimentLog.campaign_id == campaign_id).exists()
        )
    )
    return bool(found)


async def leave_group(session: AsyncSession, campaign_id: uuid.UUID) -> None:
    """The campaign's log rows leave its exclusion group: its players are free to join
    the group's other campaigns."""
    await session.execute(
        update(ABExperimentLog)
        .where(
            ABExperimentLog.campaign_id == campaign_id,
            ABExperimentLog.exclusion_group.is_not(None),
        )
        .values(exclusion_group=None)
    )


async def players_assigned(session: AsyncSession, rule_id: uuid.UUID) -> int:
    """Log rows naming the rule as their variant, counted through the results index
    (campaign, variant, …): every log row's campaign exists (the log cascades with it)."""
    count: int = (
        await session.scalar(
            select(func.count())
            .select_from(ABExperimentLog)
            .where(
                ABExperimentLog.campaign_id.in_(select(MarketingCampaign.id).scalar_subquery()),
                ABExperimentLog.variant_id == rule_id,
            )
        )
        or 0
    )
    return count


# --- rows by id ------------------------------------------------------------------------------

Row = TypeVar("Row", ABRule, MarketingCampaign)


async def by_id(
    session: AsyncSession, model: type[Row], row_id: uuid.UUID, *, lock: bool = False
) -> Row | None:
    query = select(model).where(model.id == row_id)
    if lock:
        query = query.with_for_update()
    found: Row | None = await session.scalar(query)
    return found


async def delete_row(session: AsyncSession, row: ABRule | MarketingCampaign) -> None:
    await session.delete(row)
    await session.flush()


async def replace_ip_ranges(
    session: AsyncSession, campaign_id: uuid.UUID, ranges: Sequence[str]
) -> None:
    """The campaign's `cidr` rows become exactly `ranges` (canonical, without repeats), in
    one statement each way however many there are."""
    await session.execute(delete(CampaignIpRange).where(CampaignIpRange.campaign_id == campaign_id))
    if ranges:
        await session.execute(
            text(
                "INSERT INTO campaign_ip_ranges (campaign_id, ip_range) "
                "SELECT :campaign_id, unnest(CAST(:ranges AS text[]))::cidr"
            ),
            {"campaign_id": campaign_id, "ranges": list(ranges)},
        )


# --- lists -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListFilter:
    active: bool | None = None
    name_prefix: str | None = None
    current: bool | None = None
    exclusion_group: str | None = None  # campaigns only
    ip: IPv4Address | IPv6Address | None = None  # campaigns only


def _common(model: type[Row], f: ListFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.active is not None:
        where.append(model.active.is_(f.active))
    if f.name_prefix:
        where.append(model.name.istartswith(f.name_prefix, autoescape=True))
    if f.current is not None:
        now = func.now()
        in_window = and_(
            or_(model.start_at.is_(None), model.start_at <= now),
            or_(model.end_at.is_(None), model.end_at > now),
        )
        where.append(in_window if f.current else not_(in_window))
    return where


def _page(query: Select[Any], model: type[Row], after: uuid.UUID | None, limit: int) -> Select[Any]:
    if after is not None:
        query = query.where(model.id < after)
    return query.order_by(model.id.desc()).limit(limit)


async def rules_page(
    session: AsyncSession, f: ListFilter, *, after: uuid.UUID | None, limit: int
) -> list[ABRule]:
    query = select(ABRule).where(*_common(ABRule, f))
    return list(await session.scalars(_page(query, ABRule, after, limit)))


def _containing(ip: IPv4Address | IPv6Address) -> ColumnElement[bool]:
    # `>>=` on the cidr column is what the GiST (inet_ops) index answers.
    address: Any = cast(str(ip), INET)
    return MarketingCampaign.id.in_(
        select(CampaignIpRange.campaign_id).where(CampaignIpRange.ip_range.op(">>=")(address))
    )


async def campaigns_page(
    session: AsyncSession, f: ListFilter, *, after: uuid.UUID | None, limit: int
) -> list[MarketingCampaign]:
    where = _common(MarketingCampaign, f)
    if f.exclusion_group is not None:
        where.append(MarketingCampaign.exclusion_group == f.exclusion_group)
    if f.ip is not None:
        where.append(_containing(f.ip))
    query = select(MarketingCampaign).where(*where)
    return list(await session.scalars(_page(query, MarketingCampaign, after, limit)))
