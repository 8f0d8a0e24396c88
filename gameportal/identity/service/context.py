"""What the identity rules work with: the client, the app's identity pieces, the caller,
and what login hands back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gameportal.config import Settings
from gameportal.identity.devices import country_for
from gameportal.identity.passwords import Passwords
from gameportal.identity.tokens import AccessTokens, DeviceTokens, RefreshTokens, device_mark
from gameportal.models import Session, User


@dataclass(frozen=True)
class ClientInfo:
    """What the request tells about the device it came from."""

    ip: str | None
    user_agent: str | None
    device_type: str
    fingerprint: str | None
    # The device token an earlier login gave this device (X-Device-Token), if sent.
    device_token: str | None = None

    @property
    def country(self) -> str | None:
        return country_for(self.ip)

    @property
    def device_mark(self) -> bytes:
        """What a refresh replay must share with the refresh it repeats (tokens.py)."""
        return device_mark(self.ip, self.user_agent, self.fingerprint)


@dataclass
class Identity:
    """The pieces identity needs, built once per app."""

    settings: Settings
    passwords: Passwords
    tokens: AccessTokens
    devices: DeviceTokens
    refresh_tokens: RefreshTokens
    session_ttl: timedelta = field(init=False)
    idle_timeout: timedelta = field(init=False)
    refresh_grace: timedelta = field(init=False)

    def __post_init__(self) -> None:
        self.session_ttl = timedelta(days=self.settings.session_ttl_days)
        self.idle_timeout = timedelta(days=self.settings.session_idle_days)
        self.refresh_grace = timedelta(seconds=self.settings.refresh_reuse_grace_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> Identity:
        return cls(
            settings=settings,
            passwords=Passwords(settings),
            tokens=AccessTokens(settings),
            devices=DeviceTokens(settings),
            refresh_tokens=RefreshTokens(settings),
        )


@dataclass(frozen=True)
class Principal:
    """The caller of an authenticated request, as the database sees it right now."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    roles: tuple[str, ...]
    # The user's profile (UserRead's fields), where the route asked for it: None when
    # only who is calling, and with which roles, was checked.
    user: dict[str, Any] | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class AuthResult:
    user: User | dict[str, Any]
    session: Session | dict[str, Any]
    tokens: IssuedTokens
    device_token: str  # for the device's next logins (tokens.DeviceTokens)
