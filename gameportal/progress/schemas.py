"""Shapes of game API keys, achievements, levels and progress in and out of the API."""

from __future__ import annotations

import itertools
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator

from gameportal.content.media.schemas import MediaRead, PublicMedia
from gameportal.kit.schemas import PRINTABLE_PATTERN, InputSchema, Schema, UtcDatetime, printable

# Keys and stat names travel in URLs and JSON keys: a plain, stable alphabet.
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
STAT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_DELTA = 1_000_000_000  # per update: far past any real game, far below bigint
MAX_COUNTER = 9_000_000_000_000_000_000  # what a stat or threshold may reach (bigint)
MAX_LEVEL = 1_000_000
MAX_STATS_PER_UPDATE = 50
MAX_THRESHOLDS = 1000
MAX_MEDIA = 10

AchievementKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
StatName = Annotated[str, StringConstraints(pattern=STAT_PATTERN)]
# The pattern states `printable` in the document (the validator decides).
Title = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(printable),
    Field(json_schema_extra={"pattern": PRINTABLE_PATTERN}),
]
Description = Annotated[str, StringConstraints(max_length=2000)]
KeyName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100),
    AfterValidator(printable),
    Field(json_schema_extra={"pattern": PRINTABLE_PATTERN}),
]
IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
]


# --- game API keys ---------------------------------------------------------------------------


class ApiKeyCreate(InputSchema):
    name: KeyName = Field(description="What the key is for, e.g. `eu-west game servers`")


class ApiKeyRead(Schema):
    id: uuid.UUID
    game_id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None = Field(
        description="Last request made with it (updated at most once a minute)"
    )


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(
        description="The key itself, shown this once: only its SHA-256 is kept. Game servers "
        "send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`"
    )


# --- achievements ----------------------------------------------------------------------------


class _Minimum(InputSchema):
    min: Annotated[int, Field(ge=1, le=MAX_COUNTER)]


class LevelCriteria(_Minimum):
    type: Literal["level"]


class PointsCriteria(_Minimum):
    type: Literal["points"]


class StatCriteria(_Minimum):
    type: Literal["stat"]
    stat: StatName


Criteria = Annotated[
    LevelCriteria | PointsCriteria | StatCriteria,
    Field(
        discriminator="type",
        description="Unlocked automatically once the player's level, points or a named stat "
        "reaches `min` (checked on every progress update)",
    ),
]


def _unique_media(value: list[uuid.UUID] | None) -> list[uuid.UUID] | None:
    return None if value is None else list(dict.fromkeys(value))


MediaIds = Annotated[
    list[uuid.UUID],
    Field(max_length=MAX_MEDIA, description="MediaAsset ids"),
    AfterValidator(_unique_media),
]


class AchievementCreate(InputSchema):
    game_id: uuid.UUID
    key: AchievementKey = Field(description="Stable per game: what game servers unlock it by")
    title: Title
    description: Description = ""
    points: Annotated[int, Field(ge=0, le=MAX_DELTA)] = Field(
        default=0, description="Added to the player's points on unlock"
    )
    hidden: bool = Field(
        default=False, description="Title, description and media withheld until unlocked"
    )
    criteria: Criteria | None = None
    media: MediaIds = Field(default_factory=list)


class AchievementUpdate(InputSchema):
    """Only the fields sent change; `criteria: null` removes the automatic unlock."""

    key: AchievementKey | None = None
    title: Title | None = None
    description: Description | None = None
    points: Annotated[int, Field(ge=0, le=MAX_DELTA)] | None = None
    hidden: bool | None = None
    criteria: Criteria | None = None
    media: MediaIds | None = None


class AchievementRead(Schema):
    """What editors see."""

    id: uuid.UUID
    game_id: uuid.UUID
    key: str
    title: str
    description: str
    points: int
    hidden: bool
    criteria: LevelCriteria | PointsCriteria | StatCriteria | None
    media: list[MediaRead]
    created_at: UtcDatetime
    updated_at: UtcDatetime


class CatalogueEntry(Schema):
    """An achievement as players see it. A hidden one the caller has not unlocked has its
    key, title, description, criteria and media withheld (null, and no media)."""

    id: uuid.UUID
    key: str | None
    title: str | None
    description: str | None
    points: int
    hidden: bool
    criteria: LevelCriteria | PointsCriteria | StatCriteria | None
    media: list[PublicMedia]
    unlock_rate: float = Field(
        description="Share of the game's players (those with progress in it) who have it, 0-1"
    )
    unlocked: bool | None = Field(
        description="Whether the caller has it; null without an access token"
    )
    unlocked_at: UtcDatetime | None


class MyAchievement(Schema):
    """One of the caller's unlocks, with the whole achievement (it is theirs to see)."""

    game_id: uuid.UUID
    unlocked_at: UtcDatetime
    achievement: CatalogueEntry


# --- levels ----------------------------------------------------------------------------------


class LevelsPut(InputSchema):
    basis: Literal["experience", "points"]
    thresholds: Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_COUNTER)]],
        Field(
            min_length=1,
            max_length=MAX_THRESHOLDS,
            description="Strictly increasing: the i-th (from 0) is what level i + 2 needs",
        ),
    ]

    @field_validator("thresholds")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        for before, after in itertools.pairwise(value):
            if after <= before:
                raise ValueError("must be strictly increasing")
        return value


class LevelsRead(Schema):
    game_id: uuid.UUID
    basis: Literal["experience", "points"]
    thresholds: list[int]
    updated_at: UtcDatetime


# --- progress --------------------------------------------------------------------------------


class ProgressChange(InputSchema):
    """What a game server reports; every change is optional, the idempotency key is not."""

    points_delta: Annotated[int, Field(ge=0, le=MAX_DELTA)] = 0
    experience_delta: Annotated[int, Field(ge=0, le=MAX_DELTA)] = 0
    level: Annotated[int, Field(ge=1, le=MAX_LEVEL)] | None = Field(
        default=None,
        description="Sets the level; refused (409) for a game whose levels follow thresholds",
    )
    stats: Annotated[
        dict[StatName, Annotated[int, Field(ge=0, le=MAX_DELTA)]],
        Field(max_length=MAX_STATS_PER_UPDATE),
    ] = Field(default_factory=dict, description='Named counters to add to, e.g. `{"kills": 3}`')
    idempotency_key: IdempotencyKey = Field(
        description="Unique per game and update: a retry with the same key returns the first "
        "result and changes nothing"
    )


class UnlockedAchievement(Schema):
    id: uuid.UUID
    key: str
    title: str
    points: int
    unlocked_at: UtcDatetime


class ProgressUpdated(Schema):
    """The player's progress after the update, and what it unlocked."""

    user_id: uuid.UUID
    game_id: uuid.UUID
    level: int
    experience: int
    points: int
    stats: dict[str, int]
    last_activity_at: UtcDatetime
    unlocked: list[UnlockedAchievement] = Field(
        description="Achievements this update unlocked (criteria met), their rewards counted"
    )


class AchievementHeld(Schema):
    id: uuid.UUID
    key: str
    unlocked_at: UtcDatetime


class ProgressRead(Schema):
    id: uuid.UUID
    user_id: uuid.UUID
    game_id: uuid.UUID
    level: int
    experience: int
    points: int
    stats: dict[str, int]
    achievements: list[AchievementHeld]
    personalized_offers: list[uuid.UUID] = Field(description="Campaign ids (live operations)")
    last_activity_at: UtcDatetime
    created_at: UtcDatetime
    updated_at: UtcDatetime


class UnlockResult(Schema):
    achievement: UnlockedAchievement
    newly_unlocked: bool = Field(description="False when the player already had it")
    progress: ProgressUpdated
