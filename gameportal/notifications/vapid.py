"""VAPID (RFC 8292): the key pair that identifies this server to browsers' push services,
and the signed `Authorization` header each push request carries."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02, VapidException

# A token is valid for at most 24 h (RFC 8292 §2); one is reused for this long per push
# service, so signing (an ECDSA operation) happens a few times a day, not per message.
TOKEN_LIFETIME_SECONDS = 12 * 3600
_RENEW_BEFORE_SECONDS = 3600


class VapidKeyError(ValueError):
    pass


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class KeyPair:
    private_key: str  # base64url of the 32-byte private scalar
    public_key: str  # base64url of the uncompressed point: the browser's applicationServerKey


def generate_keys() -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    return KeyPair(b64url(scalar), _public_b64(key.public_key()))


def _public_b64(key: ec.EllipticCurvePublicKey) -> str:
    return b64url(
        key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )


class VapidSigner:
    """Signs for one key; the header is cached per push service origin."""

    def __init__(self, private_key: str, subject: str) -> None:
        try:
            if "BEGIN" in private_key:
                self._vapid = Vapid02.from_pem(private_key.encode())
            else:
                self._vapid = Vapid02.from_string(private_key.strip())
        except (VapidException, ValueError, TypeError) as exc:
            raise VapidKeyError(
                "GAMEPORTAL_VAPID_PRIVATE_KEY is not a P-256 private key "
                "(base64url, or PEM); make one with `gameportal vapid-keys`"
            ) from exc
        self.subject = subject
        try:  # py_vapid checks the subject when signing: find out now, not at first push
            self._vapid.sign({"aud": "https://push.invalid", "sub": subject})
        except VapidException as exc:
            raise VapidKeyError(
                "GAMEPORTAL_VAPID_SUBJECT must be a mailto: address or an https: URL"
            ) from exc
        self.public_key = _public_b64(self._vapid.public_key)
        self._cache: dict[str, tuple[float, str]] = {}

    def authorization(self, endpoint: str, now: float | None = None) -> str:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time() if now is None else now
        cached = self._cache.get(audience)
        if cached is not None and cached[0] - now > _RENEW_BEFORE_SECONDS:
            return cached[1]
        expires = int(now) + TOKEN_LIFETIME_SECONDS
        header: str = self._vapid.sign({"aud": audience, "sub": self.subject, "exp": expires})[
            "Authorization"
        ]
        self._cache[audience] = (expires, header)
        return header
