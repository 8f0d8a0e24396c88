"""Shapes of game API keys, achievements, levels and progress in and out of the API."""

from __future__ import annotations

import itertools
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator

from gameportal.content.media.schemas import (
    MEDIA_EXAMPLE,
    PUBLIC_MEDIA_EXAMPLE,
    MediaRead,
    PublicMedia,
)
from gameportal.kit.schemas import (
    PRINTABLE_PATTERN,
    InputSchema,
    Schema,
    UtcDatetime,
    example,
    printable,
)

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


API_KEY_CREATE_EXAMPLE = {"name": "eu-west game servers"}


class ApiKeyCreate(InputSchema):
    model_config = example(API_KEY_CREATE_EXAMPLE)

    name: KeyName = Field(description="What the key is for, e.g. `eu-west game servers`")


API_KEY_EXAMPLE = {
    "id": "0195a3d4-6f70-7162-8c9d-0e1f2a3b4c5d",
    "gameId": "0195a0f1-2e3d-7b4c-a5d6-e7f8091a2b3c",
    "name": "eu-west game servers",
    "prefix": "gp_7Hq2",
    "createdAt": "2026-03-01T12:00:00Z",
    "lastUsedAt": "2026-03-21T08:14:00Z",
}


class ApiKeyRead(Schema):
    model_config = example(API_KEY_EXAMPLE)

    id: uuid.UUID
    game_id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None = Field(
        description="Last request made with it (updated at most once a minute)"
    )


API_KEY_CREATED_EXAMPLE = {
    **API_KEY_EXAMPLE,
    "lastUsedAt": None,
    "key": "gp_7Hq2vL9xR4mT8wK1zN6pB3cF5jD0sY2aE",
}


class ApiKeyCreated(ApiKeyRead):
    model_config = example(API_KEY_CREATED_EXAMPLE)

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


ACHIEVEMENT_CREATE_EXAMPLE = {
    "gameId": "0195a0f1-2e3d-7b4c-a5d6-e7f8091a2b3c",
    "key": "first-blood",
    "title": "First Blood",
    "description": "Win your first match.",
    "points": 50,
    "hidden": False,
    "criteria": {"type": "stat", "stat": "wins", "min": 1},
}


class AchievementCreate(InputSchema):
    model_config = example(ACHIEVEMENT_CREATE_EXAMPLE)

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


ACHIEVEMENT_UPDATE_EXAMPLE = {"points": 75, "description": "Win your first ranked match."}


class AchievementUpdate(InputSchema):
    """Only the fields sent change; `criteria: null` removes the automatic unlock."""

    model_config = example(ACHIEVEMENT_UPDATE_EXAMPLE)

    key: AchievementKey | None = None
    title: Title | None = None
    description: Description | None = None
    points: Annotated[int, Field(ge=0, le=MAX_DELTA)] | None = None
    hidden: bool | None = None
    criteria: Criteria | None = None
    media: MediaIds | None = None


ACHIEVEMENT_EXAMPLE = {
    "id": "0195a3d2-4d5e-7f60-8a7b-8c9d0e1f2a3b",
    "gameId": "0195a0f1-2e3d-7b4c-a5d6-e7f8091a2b3c",
    "key": "first-blood",
    "title": "First Blood",
    "description": "Win your first match.",
    "points": 50,
    "hidden": False,
    "criteria": {"type": "stat", "stat": "wins", "min": 1},
    "media": [MEDIA_EXAMPLE],
    "createdAt": "2026-03-01T12:00:00Z",
    "updatedAt": "2026-03-01T12:00:00Z",
}


class AchievementRead(Schema):
    """What editors see."""

    model_config = example(ACHIEVEMENT_EXAMPLE)

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


CATALOGUE_ENTRY_EXAMPLE = {
    "id": "0195a3d2-4d5e-7f60-8a7b-8c9d0e1f2a3b",
    "key": "first-blood",
    "title": "First Blood",
    "description": "Win your first match.",
    "points": 50,
    "hidden": False,
    "criteria": {"type": "stat", "stat": "wins", "min": 1},
    "media": [PUBLIC_MEDIA_EXAMPLE],
    "unlockRate": 0.62,
    "unlocked": True,
    "unlockedAt": "2026-03-20T18:41:02Z",
}


class CatalogueEntry(Schema):
    """An achievement as players see it. A hidden one the caller has not unlocked has its
    key, title, description, criteria and media withheld (null, and no media)."""

    model_config = example(CATALOGUE_ENTRY_EXAMPLE)

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


MY_ACHIEVEMENT_EXAMPLE = {
    "gameId": "0195a0f1-2e3d-7b4c-a5d6-e7f8091a2b3c",
    "unlockedAt": "2026-03-20T18:41:02Z",
    "achievement": CATALOGUE_ENTRY_EXAMPLE,
}


class MyAchievement(Schema):
    """One of the caller's unlocks, with the whole achievement (it is theirs to see)."""

    model_config = example(MY_ACHIEVEMENT_EXAMPLE)

    game_id: uuid.UUID
    unlocked_at: UtcDatetime
    achievement: CatalogueEntry


# --- levels ----------------------------------------------------------------------------------


LEVELS_PUT_EXAMPLE = {"basis": "experience", "thresholds": [100, 250, 500, 1000, 2000]}


class LevelsPut(InputSchema):
    model_config = example(LEVELS_PUT_EXAMPLE)

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


LEVELS_EXAMPLE = {
    "gameId": "0195a0f1-2e3d-7b4c-a5d6-e7f8091a2b3c",
    "basis": "experience",
    "thresholds": [100, 250, 500, 1000, 2000],
    "updatedAt": "2026-03-01T12:00:00Z",
}


class LevelsRead(Schema):
    model_config = example(LEVELS_EXAMPLE)

    game_id: uuid.UUID
    basis: Literal["experience", "points"]
    thresholds: list[int]
    updated_at: UtcDatetime


# --- progress --------------------------------------------------------------------------------


PROGRESS_CHANGE_EXAMPLE = {
    "pointsDelta": 50,
    "experienceDelta": 120,
    "stats": {"wins": 1, "kills": 7},
    "idempotencyKey": "match-8f3a2c91-player-4",
}


class ProgressChange(InputSchema):
    """What a game server reports; every change is optional, the idempotency key is not."""

    model_config = example(PROGRESS_CHANGE_EXAMPLE)

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


UNLOCKED_ACHIEVEMENT_EXAMPLE = {
    "id": "0195a3d2-4d5e-7f60-8a7b-8c9d0e1f2a3b",
    "key": "first-blood",
    "title": "First Blood",
    "points": 50,
    "unlockedAt": "2026-03-20T18:41:02Z",
}


class UnlockedAchievement(Schema):
    model_config = example(UNLOCKED_ACHIEVEMENT_EXAMPLE)

    id: uuid.UUID
    key: str
    title: str
    points: int
    unlocked_at: UtcDatetime


PROGRESS_UPDATED_EXAMPLE = {
    "userId": "0195a3c2-5b1e-7c4d-8e9f-0a1b2c3d4e5f",
    "gameId": "0195a0f1-2e3d-7b4c-a5d6-e7f8091a2b3c",
    "level": 3,
    "experience": 370,
    "points": 150,
    "stats": {"wins": 1, "kills": 7},
    "lastActivityAt": "2026-03-20T18:41:02Z",
    "unlocked": [UNLOCKED_ACHIEVEMENT_EXAMPLE],
}


class ProgressUpdated(Schema):
    """The player's progress after the update, and what it unlocked."""

    model_config = example(PROGRESS_UPDATED_EXAMPLE)

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


PROGRESS_EXAMPLE = {
    "id": "0195a3d5-7081-7263-9dae-1f2a3b4c5d6e",
    "userId": "0195a3c2-5b1e-7c4d-8e9f-0a1b2c3d4e5f",
    "gameId": "0195a0f1-2e3d-7b4c-a5d6-e7f8091a2b3c",
    "level": 3,
    "experience": 370,
    "points": 150,
    "stats": {"wins": 1, "kills": 7},
    "achievements": [
        {
            "id": "0195a3d2-4d5e-7f60-8a7b-8c9d0e1f2a3b",
            "key": "first-blood",
            "unlockedAt": "2026-03-20T18:41:02Z",
        }
    ],
    "personalizedOffers": [],
    "lastActivityAt": "2026-03-20T18:41:02Z",
    "createdAt": "2026-03-14T10:00:00Z",
    "updatedAt": "2026-03-20T18:41:02Z",
}


class ProgressRead(Schema):
    model_config = example(PROGRESS_EXAMPLE)

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


UNLOCK_RESULT_EXAMPLE = {
    "achievement": UNLOCKED_ACHIEVEMENT_EXAMPLE,
    "newlyUnlocked": True,
    "progress": PROGRESS_UPDATED_EXAMPLE,
}


class UnlockResult(Schema):
    model_config = example(UNLOCK_RESULT_EXAMPLE)

    achievement: UnlockedAchievement
    newly_unlocked: bool = Field(description="False when the player already had it")
    progress: ProgressUpdated
