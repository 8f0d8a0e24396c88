"""Access tokens (JWT, one algorithm, strict claims) and opaque refresh tokens."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
import orjson

from gameportal.config import Settings

ALGORITHM = "HS256"  # the only one accepted; "none" and asymmetric confusions are refused
_REQUIRED_CLAIMS = ["sub", "sid", "roles", "iat", "exp", "iss", "aud"]


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- refresh successors ----------------------------------------------------------------------
#
# Two tabs of one browser (or a game client retrying a refresh whose answer was lost) send
# the same refresh token at once: one rotates it, the other arrives with a token already
# spent. To answer the second with the same successor, the server must be able to make the
# successor again; rather than keep it (even sealed), it derives it: the successor is an
# HMAC of the token it replaces and of the device that presented it, under a key derived
# from the secret key. So nothing usable is stored anywhere (the database keeps SHA-256
# hashes only, as before), the normal refresh does no more database work than before (an
# HMAC instead of a random draw: microseconds), and only a caller holding the spent token,
# on the same device (device_mark), can make its successor. With the window enforced by
# the database (the spent token's `spent_at`) and the session's current hash, that is the
# whole grace check (see service.auth.refresh). To anyone without the secret key a
# successor is as unpredictable as a random token (HMAC-SHA256 is a PRF); whoever has the
# key could already sign access tokens for any session.


def device_mark(ip: str | None, user_agent: str | None, fingerprint: str | None) -> bytes:
    """What tells "the same device" for a refresh replay: the address (an IPv6 client by
    its /64, where its privacy addresses change), the User-Agent and the
    X-Device-Fingerprint, all as the request sent them. Two tabs of one browser share all
    three; a stolen token used elsewhere differs in at least one of them, most often the
    address."""
    if ip is not None and ":" in ip:
        with contextlib.suppress(OSError):  # inet_pton: a fiftieth of ipaddress's time
            ip = socket.inet_pton(socket.AF_INET6, ip)[:8].hex() + "::/64"
    return orjson.dumps([ip, user_agent, fingerprint])


class RefreshTokens:
    """The successor of a refresh token: `HMAC-SHA256(key, token, device)`, base64url (43
    characters, as a new random token), under a key derived from the secret key for this
    use alone."""

    def __init__(self, settings: Settings) -> None:
        self._mac = hmac.new(
            hmac.new(_signing_key(settings), b"gameportal refresh successor", "sha256").digest(),
            digestmod=hashlib.sha256,
        )

    def successor(self, token: str, device: bytes) -> str:
        mac = self._mac.copy()
        # Length-prefixed, so no token and device pair reads as another.
        raw = token.encode()
        mac.update(len(raw).to_bytes(4, "big") + raw + device)
        return _b64url(mac.digest()).decode()


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    roles: tuple[str, ...]


class InvalidAccessToken(Exception):
    pass


_LEEWAY_SECONDS = 5
# Verified tokens, kept until they expire. A client sends the same token for its whole
# lifetime; PyJWT's checks cost more than the rest of an authenticated request. The cache
# holds only tokens whose signature and claims passed; liveness is still checked in the
# database on every request.
_VERIFIED_CACHE_SIZE = 10_000


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


# PyJWT's header for HS256, as it writes it (sorted keys, no spaces).
_HEADER = _b64url(b'{"alg":"HS256","typ":"JWT"}')


def _signing_key(settings: Settings) -> bytes:
    if not settings.secret_key:  # never sign with nothing: settings.with_secret_key() first
        raise ValueError("no secret key in these settings; use Settings.with_secret_key()")
    return settings.secret_key.encode()


class AccessTokens:
    def __init__(self, settings: Settings) -> None:
        _signing_key(settings)
        self._key = settings.secret_key
        # Keyed once; each token signs a copy (PyJWT prepares the key on every call).
        self._mac = hmac.new(settings.secret_key.encode(), digestmod=hashlib.sha256)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.ttl = timedelta(seconds=settings.access_token_ttl_seconds)
        self._verified: dict[str, tuple[AccessClaims, float]] = {}

    def issue(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, roles: list[str], now: datetime
    ) -> str:
        payload = {
            "sub": str(user_id),
            "sid": str(session_id),
            "roles": roles,
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            "iss": self._issuer,
            "aud": self._audience,
            "jti": secrets.token_hex(8),
        }
        # The bytes jwt.encode(payload, key, "HS256") gives (a test holds them equal),
        # at a third of its cost: it is on every login and refresh.
        signing_input = _HEADER + b"." + _b64url(orjson.dumps(payload))
        mac = self._mac.copy()
        mac.update(signing_input)
        return (signing_input + b"." + _b64url(mac.digest())).decode()

    def decode(self, token: str) -> AccessClaims:
        cached = self._verified.get(token)
        if cached is not None:
            claims, expires = cached
            if time.time() < expires + _LEEWAY_SECONDS:
                return claims
            del self._verified[token]
            raise InvalidAccessToken("the access token has expired")
        result = self._decode(token)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # oldest first
        self._verified[token] = result
        return result[0]

    def _decode(self, token: str) -> tuple[AccessClaims, float]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": _REQUIRED_CLAIMS},
                leeway=_LEEWAY_SECONDS,
            )
            roles = claims["roles"]
            if not isinstance(roles, list):
                raise InvalidAccessToken("malformed roles claim")
            parsed = AccessClaims(
                user_id=uuid.UUID(str(claims["sub"])),
                session_id=uuid.UUID(str(claims["sid"])),
                roles=tuple(str(r) for r in roles),
            )
            return parsed, float(claims["exp"])
        except jwt.ExpiredSignatureError:
            raise InvalidAccessToken("the access token has expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise InvalidAccessToken("the access token is invalid") from None


# --- device tokens ---------------------------------------------------------------------------
#
# OWASP's device cookies (Slow Down Online Guessing Attacks with Device Cookies): a login
# that succeeds hands the device a token signed for that account. A later login that brings
# it back is throttled on that token's own count, not the account's, so someone else's wrong
# passwords cannot lock the player out of a device they have logged in from. Stateless: the
# server keeps only the count of a token's failures (login_throttle, scope `device`).


@dataclass(frozen=True)
class DeviceClaim:
    """A device token that is authentic, unexpired and this account's."""

    key: str  # its throttle key: the token's random part
    password_mark: str  # password_mark() of the hash it was issued under


def password_mark(password_hash: str) -> str:
    """A short fingerprint of the stored hash, which PostgreSQL computes alike
    (repository.throttle): a device token holds only while the password it was earned
    with is still the account's, so a stolen token dies with a password change."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


class DeviceTokens:
    """`nonce.expires.mark.signature`: the signature (HMAC-SHA256 under a key derived from
    the secret key, so it signs nothing else) covers the account's address too."""

    def __init__(self, settings: Settings) -> None:
        self._mac = hmac.new(
            hmac.new(_signing_key(settings), b"gameportal device token", "sha256").digest(),
            digestmod=hashlib.sha256,
        )
        self.ttl = timedelta(days=settings.device_token_ttl_days)

    def _signature(self, email: str, body: str) -> str:
        mac = self._mac.copy()
        mac.update(f"{email}\n{body}".encode())
        return _b64url(mac.digest()).decode()

    def issue(self, *, email: str, password_hash: str, now: datetime) -> str:
        expires = int((now + self.ttl).timestamp())
        body = f"{secrets.token_urlsafe(16)}.{expires}.{password_mark(password_hash)}"
        return f"{body}.{self._signature(email, body)}"

    def read(self, token: str | None, *, email: str) -> DeviceClaim | None:
        """The token's claim if it is this account's, authentic and unexpired; else None
        (the login then goes as from a device never seen)."""
        if not token:
            return None
        body, _, signature = token.rpartition(".")
        parts = body.split(".")
        if len(parts) != 3 or not hmac.compare_digest(signature, self._signature(email, body)):
            return None
        nonce, expires, mark = parts
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return DeviceClaim(key=nonce, password_mark=mark)
