"""Errors of progress, each with its own problem type."""

from __future__ import annotations

from gameportal.errors import Conflict, FieldProblem, NotFound, Unauthorized


class InvalidApiKey(Unauthorized):
    slug = "invalid-api-key"
    title = "Unknown or revoked game API key"


class GameNotFound(NotFound):
    slug = "game-not-found"
    title = "Game not found"


class GameNotPublished(Conflict):
    slug = "game-not-published"
    title = "The game is not published"


class PlayerNotFound(NotFound):
    slug = "player-not-found"
    title = "Player not found"


class PlayerBlocked(Conflict):
    slug = "player-blocked"
    title = "The player is blocked"


class ProgressNotFound(NotFound):
    slug = "progress-not-found"
    title = "No progress yet"


class AchievementNotFound(NotFound):
    slug = "achievement-not-found"
    title = "Achievement not found"


class ApiKeyNotFound(NotFound):
    slug = "api-key-not-found"
    title = "API key not found"


class LevelsNotFound(NotFound):
    slug = "levels-not-found"
    title = "The game has no level thresholds"


def _field(field: str, message: str, code: str) -> list[FieldProblem]:
    return [FieldProblem(field=field, location="body", message=message, code=code)]


class LevelFollowsThresholds(Conflict):
    slug = "level-follows-thresholds"
    title = "This game's levels follow its thresholds"

    def __init__(self) -> None:
        message = "the game has level thresholds, so the level follows from them; leave it out"
        super().__init__(message, errors=_field("level", message, "levels_by_threshold"))


class IdempotencyKeyReused(Conflict):
    slug = "idempotency-key-reused"
    title = "This idempotency key was used for another update"

    def __init__(self) -> None:
        message = (
            "this game already applied another update (another player or other changes) "
            "under this idempotency key; use a new key for a new update"
        )
        super().__init__(message, errors=_field("idempotencyKey", message, "reused"))


class AchievementKeyTaken(Conflict):
    slug = "achievement-key-taken"
    title = "The game already has an achievement with this key"

    def __init__(self, key: str) -> None:
        message = f"the game already has an achievement with the key {key!r}"
        super().__init__(f"{message}; choose another", errors=_field("key", message, "taken"))
