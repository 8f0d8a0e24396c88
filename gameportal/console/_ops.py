"""What the messages, games and live-operations pages share: turning a form into what a
domain's schema takes, and the schema's or the service's field problems back into
messages beside the form's fields; times as a datetime-local field holds them (UTC);
finding a player by email or id.

Reads only; every write goes through the domain's service, as the API's do."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from gameportal.errors import PortalError
from gameportal.models import Content, User, normalize_email

# The form's own problems that belong to no one field: shown above the form.
FORM = "form"

_INDEX = re.compile(r"\[\d+\]")


def _sentence(message: str) -> str:
    message = message.removeprefix("Value error, ").strip()
    if not message:
        return "Is not valid."
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "?", "!")) else message + "."


def _field_for(path: Iterable[str], fields: Mapping[str, str]) -> str:
    """The form field a schema path (`targetingRules.countries`) belongs to: the longest
    prefix of it that `fields` names, else the form as a whole."""
    parts = [p for p in path if p]
    while parts:
        found = fields.get(".".join(parts))
        if found is not None:
            return found
        parts.pop()
    return FORM


def _joined(problems: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{form field: its first problems, at most three}: a list field may have several
    (each bad entry is named)."""
    found: dict[str, list[str]] = {}
    for field, message in problems:
        sentences = found.setdefault(field, [])
        sentence = _sentence(message)
        if sentence not in sentences and len(sentences) < 3:
            sentences.append(sentence)
    return {field: " ".join(sentences) for field, sentences in found.items()}


_EMPTY_MEANS_REQUIRED = {"missing", "string_too_short", "int_parsing", "float_parsing"}


def _about_entry(problem: Any) -> str:
    """A problem's message in a form's words: an empty field is required, a pattern is
    the form its hint describes, an entry of a list (a country, a network) is named."""
    message: str = problem["msg"]
    value = problem.get("input")
    if problem["type"] in _EMPTY_MEANS_REQUIRED and value in ("", None):
        return "Required"
    if problem["type"] == "string_pattern_mismatch":
        pattern = (problem.get("ctx") or {}).get("pattern", "")
        message = f"Not in the form the hint describes (the pattern {pattern})"
    if problem["loc"] and isinstance(problem["loc"][-1], int) and isinstance(value, str):
        quoted = f"'{value}'"
        if quoted not in message:
            return f"{quoted}: {message[:1].lower()}{message[1:]}"
    return message


def validation_errors(exc: ValidationError, fields: Mapping[str, str]) -> dict[str, str]:
    """A schema's refusal as {form field: message}."""
    return _joined(
        (
            _field_for([str(p) for p in problem["loc"] if not isinstance(p, int)], fields),
            _about_entry(problem),
        )
        for problem in exc.errors()
    )


def service_errors(exc: PortalError, fields: Mapping[str, str]) -> dict[str, str]:
    """A service's refusal as {form field: message}; one without field problems (a
    conflict) is the form's."""
    errors = _joined(
        (_field_for(_INDEX.sub("", problem.field).split("."), fields), problem.message)
        for problem in exc.errors or []
    )
    return errors or {FORM: _sentence(exc.detail or exc.title)}


# --- values as forms hold them -------------------------------------------------------------


def field_text(form: FormData, name: str) -> str:
    """A field's text with the line breaks a program expects: browsers send a textarea's
    as CR LF (the HTML form encoding), which would be stored and sent on as they came."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def parse_utc(text: str) -> datetime:
    """A datetime-local field's value (`2030-03-01T09:30`), read as UTC; ValueError with a
    message for the form otherwise."""
    text = text.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be a date and time, e.g. 2030-03-01T09:30 (UTC)") from None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def local_value(value: datetime | None) -> str:
    """What a datetime-local field shows for `value` (UTC, to the minute)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def number(text: str, kind: type[int] | type[float]) -> int | float | str:
    """A form's number, or the text itself when it is not one (so that the schema's own
    check refuses it with its message)."""
    text = text.strip()
    try:
        return kind(text)
    except ValueError:
        return text


def words(text: str) -> list[str]:
    """A list typed into one field, separated by commas, spaces or lines."""
    return [w for w in re.split(r"[\s,;]+", text) if w]


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def data_json(value: Any) -> str:
    """JSON for a data-* attribute (autoescaped by the template): a chart's data."""
    return orjson.dumps(value).decode()


def percent(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{digits}f}%"


def signed_percent(value: float | None, digits: int = 1) -> str:
    """A relative change: +12.3%, or a decrease with a real minus sign (U+2212)."""
    if value is None:
        return "—"
    text = f"{abs(value) * 100:.{digits}f}%"
    return f"+{text}" if value > 0 else (f"−{text}" if value < 0 else text)


def p_value(value: float | None) -> str:
    """`p = 0.042`, `p < 0.001`."""
    if value is None:
        return "p: —"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def checked(flag: bool) -> Markup:
    return Markup(" checked") if flag else Markup("")


# --- lookups -------------------------------------------------------------------------------


async def find_user(session: AsyncSession, text: str) -> User | None:
    """The account an operator typed: its email address (any case) or its id."""
    text = text.strip()
    if not text:
        return None
    try:
        user_id = uuid.UUID(text)
    except ValueError:
        found: User | None = await session.scalar(
            select(User).where(User.email == normalize_email(text))
        )
        return found
    return await session.get(User, user_id)


@dataclass(frozen=True)
class ContentChoice:
    id: uuid.UUID
    title: str
    type: str
    status: str
    locale: str

    @property
    def label(self) -> str:
        return f"{self.title} ({self.type.lower()}, {self.locale}, {self.status.lower()})"


async def content_choices(session: AsyncSession, limit: int = 500) -> list[ContentChoice]:
    """Content items a campaign or variant may name, newest first (any status but
    archived: a campaign is often prepared before what it promotes is published)."""
    rows = await session.execute(
        select(Content.id, Content.title, Content.type, Content.status, Content.locale)
        .where(Content.status != "ARCHIVED")
        .order_by(Content.id.desc())
        .limit(limit)
    )
    return [ContentChoice(*row) for row in rows]


async def game_choices(session: AsyncSession) -> list[tuple[uuid.UUID, str]]:
    """Every game (content of type GAME) but archived ones, by title: (id, title)."""
    rows = await session.execute(
        select(Content.id, Content.title)
        .where(Content.type == "GAME", Content.status != "ARCHIVED")
        .order_by(Content.title, Content.id)
    )
    return [(row.id, row.title) for row in rows]
