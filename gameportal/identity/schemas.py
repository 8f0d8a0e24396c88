from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import langcodes
import orjson
from pydantic import AfterValidator, BeforeValidator, EmailStr, Field, StrictBool, StringConstraints

from gameportal.identity.addresses import folded, refuse_lookalikes
from gameportal.kit.schemas import (
    LANGUAGE_TAG_DESCRIPTION,
    LANGUAGE_TAG_PATTERN,
    PRINTABLE_NOT_BLANK_PATTERN,
    InputSchema,
    IpAddress,
    Schema,
    UtcDatetime,
    example,
    printable,
    utc_text,
    uuid_as_text,
)

Role = Literal["user", "editor", "marketer", "admin"]
Theme = Literal["light", "dark", "system"]
DeviceType = Literal["MOBILE", "DESKTOP", "OTHER"]

# The service applies the configured bounds; this one only keeps hostile input bounded.
PasswordField = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
# A password being set: the schema states the service's rules (the length bounds are
# settings, never under 8; strength has no JSON Schema keyword, so it is described).
NewPassword = Annotated[
    PasswordField,
    Field(
        description="At least `GAMEPORTAL_PASSWORD_MIN_LENGTH` characters (8 by default, "
        "never fewer), at most `GAMEPORTAL_PASSWORD_MAX_LENGTH` (128 by default), and hard "
        "to guess: a zxcvbn score of at least `GAMEPORTAL_PASSWORD_MIN_SCORE` of 4 (3 by "
        "default). Refused with the codes `password_too_short`, `password_too_long` or "
        "`password_too_weak`",
        json_schema_extra={"minLength": 8},
    ),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(printable),
    Field(json_schema_extra={"pattern": PRINTABLE_NOT_BLANK_PATTERN}),
]
# Compatibility forms folded first (NFKC), the domain IDNA-normalised by the validator: an
# address is looked up the same way at login as it was stored at registration.
Email = Annotated[EmailStr, BeforeValidator(folded), StringConstraints(max_length=320)]
# A new account's address also may not mix look-alike scripts (identity/addresses.py).
NewEmail = Annotated[Email, AfterValidator(refuse_lookalikes)]
Fingerprint = Annotated[str, StringConstraints(min_length=1, max_length=128)]
DeviceToken = Annotated[str, StringConstraints(min_length=1, max_length=256)]
SessionMode = Annotated[
    Literal["bearer", "cookie"],
    Field(
        description="`bearer` (the default, for game clients): both tokens in the answer. "
        "`cookie` (browser session mode): the refresh token only in an HttpOnly cookie that "
        "refresh and logout read, `refreshToken` null in the answer; the request must then "
        "come from an allowed origin with the `X-CSRF` header (see the README's Browser "
        "apps)",
    ),
]
_DEVICE_HELP = (
    "The `deviceToken` an earlier login or registration on this account gave this device; "
    "the X-Device-Token header also works. Failed logins from elsewhere do not lock a "
    "device that sends one out: its attempts are counted on the token alone"
)


def _language_tag(value: str) -> str:
    if not langcodes.tag_is_valid(value):
        raise ValueError("must be a valid BCP 47 language tag, e.g. `en` or `pt-BR`")
    return str(langcodes.standardize_tag(value))


LanguageTag = Annotated[
    str,
    StringConstraints(min_length=2, max_length=35, pattern=LANGUAGE_TAG_PATTERN),
    AfterValidator(_language_tag),
    Field(description=LANGUAGE_TAG_DESCRIPTION),
]


class Preferences(InputSchema):
    language: LanguageTag | None = Field(default=None, examples=["en"])
    theme: Theme | None = Field(default=None, examples=["dark"])


class PreferencesRead(Schema):
    language: str | None = None
    theme: Theme | None = None


USER_EXAMPLE = {
    "id": "0195a3c2-5b1e-7c4d-8e9f-0a1b2c3d4e5f",
    "email": "player@example.com",
    "name": "Ada",
    "createdAt": "2026-03-14T09:26:53Z",
    "lastLoginAt": "2026-03-20T18:02:11Z",
    "isBlocked": False,
    "country": "FR",
    "emailVerifiedAt": "2026-03-14T09:31:02Z",
    "roles": ["user"],
    "preferences": {"language": "fr", "theme": "dark"},
}


class UserRead(Schema):
    model_config = example(USER_EXAMPLE)

    id: uuid.UUID
    email: str
    name: str
    created_at: UtcDatetime
    last_login_at: UtcDatetime | None
    is_blocked: bool
    country: str | None = Field(description="ISO 3166-1 alpha-2, from the registration IP")
    email_verified_at: UtcDatetime | None = Field(
        default=None, description="When the player proved the address is theirs"
    )
    roles: list[Role]
    preferences: PreferencesRead


SESSION_EXAMPLE = {
    "id": "0195a3c2-6d2f-7a10-9b3c-4d5e6f708192",
    "ip": "203.0.113.7",
    "country": "FR",
    "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0",
    "deviceType": "DESKTOP",
    "fingerprint": None,
    "createdAt": "2026-03-20T18:02:11Z",
    "lastUsedAt": "2026-03-20T18:40:37Z",
    "expiresAt": "2026-04-19T18:02:11Z",
    "current": True,
}


class SessionRead(Schema):
    model_config = example(SESSION_EXAMPLE)

    id: uuid.UUID
    ip: IpAddress | None
    country: str | None
    user_agent: str | None
    device_type: DeviceType
    fingerprint: str | None
    created_at: UtcDatetime
    last_used_at: UtcDatetime
    expires_at: UtcDatetime
    current: bool = Field(default=False, description="True for the session of this request")


SECURITY_EVENT_EXAMPLE = {
    "id": "0195a3d7-92a3-7465-9fc0-3b4c5d6e7f80",
    "kind": "login_lockout",
    "sessionId": None,
    "ip": "198.51.100.23",
    "detail": {"failures": 10, "lockedForSeconds": 900},
    "createdAt": "2026-03-21T02:14:09Z",
}


class SecurityEventRead(Schema):
    model_config = example(SECURITY_EVENT_EXAMPLE)

    id: uuid.UUID
    kind: str = Field(
        description="login_failed, login_lockout, refresh_token_reuse, password_changed, "
        "password_reset, blocked, unblocked, roles_changed, sessions_ended_by_admin, "
        "session_ended_by_admin"
    )
    session_id: uuid.UUID | None
    ip: IpAddress | None
    detail: dict[str, Any]
    created_at: UtcDatetime


REGISTER_EXAMPLE = {
    "email": "player@example.com",
    "password": "correct horse battery staple",
    "name": "Ada",
    "preferences": {"language": "fr", "theme": "dark"},
}


class RegisterRequest(InputSchema):
    model_config = example(REGISTER_EXAMPLE)

    email: NewEmail = Field(examples=["player@example.com"])
    password: NewPassword = Field(examples=["correct horse battery staple"])
    name: Name = Field(examples=["Ada"])
    preferences: Preferences | None = None
    fingerprint: Fingerprint | None = None
    session_mode: SessionMode = "bearer"


LOGIN_EXAMPLE = {
    "email": "player@example.com",
    "password": "correct horse battery staple",
}


class LoginRequest(InputSchema):
    model_config = example(LOGIN_EXAMPLE)

    email: Email = Field(examples=["player@example.com"])
    password: PasswordField = Field(examples=["correct horse battery staple"])
    fingerprint: Fingerprint | None = Field(
        default=None, description="Device fingerprint; the X-Device-Fingerprint header also works"
    )
    device_token: DeviceToken | None = Field(default=None, description=_DEVICE_HELP)
    session_mode: SessionMode = "bearer"


REFRESH_EXAMPLE = {"refreshToken": "rt_Yp3kX9vQ2mW8zL5cB1nR7tF4hJ6dS0aG"}


class RefreshRequest(InputSchema):
    model_config = example(REFRESH_EXAMPLE)

    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256)]


TOKEN_EXAMPLE = {
    "accessToken": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwMTk1YTNjMiJ9.c2lnbmF0dXJl",
    "refreshToken": "rt_Yp3kX9vQ2mW8zL5cB1nR7tF4hJ6dS0aG",
    "tokenType": "Bearer",
    "expiresIn": 900,
}


class TokenResponse(Schema):
    model_config = example(TOKEN_EXAMPLE)

    access_token: str
    refresh_token: str | None = Field(
        description="Opaque; spent on use, keep only the newest. Null in browser session "
        "mode: the token is in the HttpOnly cookie instead"
    )
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the access token expires")


AUTH_EXAMPLE = {
    **TOKEN_EXAMPLE,
    "deviceToken": "dt_M2sQ8wE4rT6yU1iO9pA3sD5fG7hJ0kL",
    "user": USER_EXAMPLE,
    "session": SESSION_EXAMPLE,
}


class AuthResponse(TokenResponse):
    model_config = example(AUTH_EXAMPLE)

    device_token: str = Field(
        description="Keep it on this device and send it with its later logins (`deviceToken` "
        "or X-Device-Token): someone else's failed logins then cannot lock this device out. "
        "Each login gives a new one; it lapses when the password changes"
    )
    user: UserRead
    session: SessionRead


ME_UPDATE_EXAMPLE = {"name": "Ada L.", "preferences": {"language": "pt-BR", "theme": None}}


class MeUpdate(InputSchema):
    model_config = example(ME_UPDATE_EXAMPLE)

    name: Name | None = None
    preferences: Preferences | None = Field(
        default=None, description="Merged into the stored preferences; null clears a key"
    )


PASSWORD_CHANGE_EXAMPLE = {
    "currentPassword": "correct horse battery staple",
    "newPassword": "tangerine submarine orchestra 42",
}


class PasswordChange(InputSchema):
    model_config = example(PASSWORD_CHANGE_EXAMPLE)

    current_password: PasswordField
    new_password: NewPassword


PASSWORD_RESET_REQUEST_EXAMPLE = {"email": "player@example.com"}


class PasswordResetRequest(InputSchema):
    model_config = example(PASSWORD_RESET_REQUEST_EXAMPLE)

    email: Email = Field(examples=["player@example.com"])


EMAIL_VERIFICATION_EXAMPLE = {"token": "ev_4fQ9zK2mX7pL1wR8tY3nB6cV0hJ5sD"}


class EmailVerification(InputSchema):
    model_config = example(EMAIL_VERIFICATION_EXAMPLE)

    token: Annotated[str, StringConstraints(min_length=1, max_length=256)]


PASSWORD_RESET_EXAMPLE = {
    "token": "pr_8kL3mN6qR1tV4wY7zA0cE2gJ5nP9sU",
    "newPassword": "tangerine submarine orchestra 42",
}


class PasswordReset(InputSchema):
    model_config = example(PASSWORD_RESET_EXAMPLE)

    token: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new_password: NewPassword


ACCOUNT_DELETE_EXAMPLE = {"password": "correct horse battery staple"}


class AccountDelete(InputSchema):
    model_config = example(ACCOUNT_DELETE_EXAMPLE)

    password: PasswordField


ADMIN_USER_UPDATE_EXAMPLE = {"roles": ["user", "editor"], "isBlocked": False}


class AdminUserUpdate(InputSchema):
    model_config = example(ADMIN_USER_UPDATE_EXAMPLE)

    roles: Annotated[list[Role], Field(min_length=1, max_length=4)] | None = Field(
        default=None, description="`user` is always kept"
    )
    is_blocked: StrictBool | None = None


# --- answers built without validating a model ----------------------------------------------

_ROLES = frozenset(get_args(Role))
_THEMES = frozenset(get_args(Theme))


def _utc_text(value: datetime | str | None) -> str | None:
    # As UtcDatetime serialises. Text is a time as PostgreSQL's to_jsonb() writes it.
    if value is None:
        return None
    return utc_text(datetime.fromisoformat(value) if isinstance(value, str) else value)


def user_read_json(user: Mapping[str, Any]) -> bytes:
    """UserRead's JSON for a user row, byte for byte, without building the model (on GET
    /me that was a fifth of the request): the row comes from our own table, already of
    the right types. Anything unexpected goes through the model, which refuses it as
    before. A test keeps the two identical."""
    try:
        preferences = user["preferences"]
        language = preferences.get("language")
        theme = preferences.get("theme")
        roles = user["roles"]
        if (
            type(user["email"]) is str
            and type(user["name"]) is str
            and (language is None or type(language) is str)
            and (theme is None or theme in _THEMES)
            and all(role in _ROLES for role in roles)
            and type(user["is_blocked"]) is bool
            and (user["country"] is None or type(user["country"]) is str)
        ):
            return orjson.dumps(
                {
                    "id": user["id"],
                    "email": user["email"],
                    "name": user["name"],
                    "createdAt": _utc_text(user["created_at"]),
                    "lastLoginAt": _utc_text(user["last_login_at"]),
                    "isBlocked": user["is_blocked"],
                    "country": user["country"],
                    "emailVerifiedAt": _utc_text(user.get("email_verified_at")),
                    "roles": list(roles),
                    "preferences": {"language": language, "theme": theme},
                },
                default=uuid_as_text,
            )
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
        pass
    return UserRead.model_validate(user).model_dump_json(by_alias=True).encode()


_DEVICE_TYPES = frozenset(get_args(DeviceType))


def session_read_json(session: Mapping[str, Any], *, current: bool) -> bytes:
    """SessionRead's JSON for a session row, byte for byte, as user_read_json does for a
    user (the same test keeps the two identical); anything unexpected goes through the
    model."""
    try:
        times = (session["created_at"], session["last_used_at"], session["expires_at"])
        texts = (session["country"], session["user_agent"], session["fingerprint"])
        if (
            session["device_type"] in _DEVICE_TYPES
            and all(isinstance(t, datetime | str) for t in times)
            and all(t is None or type(t) is str for t in texts)
        ):
            ip = session["ip"]
            return orjson.dumps(
                {
                    "id": session["id"],
                    "ip": None if ip is None else str(ip),
                    "country": texts[0],
                    "userAgent": texts[1],
                    "deviceType": session["device_type"],
                    "fingerprint": texts[2],
                    "createdAt": _utc_text(times[0]),
                    "lastUsedAt": _utc_text(times[1]),
                    "expiresAt": _utc_text(times[2]),
                    "current": current,
                },
                default=uuid_as_text,
            )
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
        pass
    model = SessionRead.model_validate(session).model_copy(update={"current": current})
    return model.model_dump_json(by_alias=True).encode()


def auth_response_json(
    access_token: str,
    refresh_token: str | None,
    expires_in: int,
    device_token: str,
    user: Mapping[str, Any],
    session: Mapping[str, Any],
) -> bytes:
    """AuthResponse's JSON, byte for byte: the tokens, the user, the new (current)
    session."""
    return orjson.dumps(
        {
            "accessToken": access_token,
            "refreshToken": refresh_token,
            "tokenType": "Bearer",
            "expiresIn": expires_in,
            "deviceToken": device_token,
            "user": orjson.Fragment(user_read_json(user)),
            "session": orjson.Fragment(session_read_json(session, current=True)),
        }
    )


def token_response_json(access_token: str, refresh_token: str | None, expires_in: int) -> bytes:
    """TokenResponse's JSON, byte for byte (a test keeps them identical)."""
    return orjson.dumps(
        {
            "accessToken": access_token,
            "refreshToken": refresh_token,
            "tokenType": "Bearer",
            "expiresIn": expires_in,
        }
    )


_REFRESH_TOKEN_MAX = 256  # RefreshRequest.refresh_token's bound


def plain_refresh_token(content_type: str | None, body: bytes) -> str | None:
    """The token of a refresh body that RefreshRequest would take as it is; None for
    anything else (another content type, odd JSON, other or extra fields, a bad value),
    which the declared route then validates and answers as before."""
    if content_type != "application/json":
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict or len(data) != 1:
        return None
    token = data.get("refreshToken")
    if type(token) is not str or not 1 <= len(token) <= _REFRESH_TOKEN_MAX or "\x00" in token:
        return None
    return token
