"""A push service on loopback, playing the part of FCM or Mozilla's autopush: it checks
each request's VAPID JWT (RFC 8292) and decrypts its aes128gcm body (RFC 8291) the way
a browser would, with RFC 8291's steps written out here rather than the library the
server encrypts with, so a misuse of that library cannot pass unnoticed."""

from __future__ import annotations

import base64
import http.server
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.net import free_port


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


class Browser:
    """One browser profile: its push key pair and authentication secret."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.auth_secret = os.urandom(16)

    def subscription(self, endpoint: str) -> dict[str, Any]:
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": _b64(self.public), "auth": _b64(self.auth_secret)},
        }

    def decrypt(self, body: bytes) -> bytes:
        salt, record_size, id_len = body[:16], struct.unpack(">I", body[16:20])[0], body[20]
        sender_public = body[21 : 21 + id_len]
        ciphertext = body[21 + id_len :]
        assert record_size >= len(ciphertext), "expected a single record"
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
        shared = self.key.exchange(ec.ECDH(), sender)
        ikm = _hkdf(
            self.auth_secret, shared, b"WebPush: info\x00" + self.public + sender_public, 32
        )
        cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        padded = padded.rstrip(b"\x00")
        assert padded.endswith(b"\x02"), "the last record ends with the 0x02 delimiter"
        return padded[:-1]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    claims: dict[str, Any]
    payload: dict[str, Any]


@dataclass
class PushService:
    base_url: str
    browsers: dict[str, Browser] = field(default_factory=dict)
    # Per path, the statuses to answer in turn (then 201); `gone` paths always 410.
    script: dict[str, list[int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def endpoint(self, name: str) -> str:
        return f"{self.base_url}/push/{name}"

    def browser(self, name: str) -> tuple[Browser, dict[str, Any]]:
        browser = self.browsers.setdefault(name, Browser())
        return browser, browser.subscription(self.endpoint(name))

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        name = path.removeprefix("/push/")
        try:
            claims = self._check_vapid(headers.get("authorization", ""))
            assert headers.get("content-encoding") == "aes128gcm", headers
            assert int(headers["ttl"]) >= 0
            payload = orjson.loads(self.browsers[name].decrypt(body))
        except Exception as exc:  # the test reads these, the server sees a 400
            self.errors.append(f"{path}: {type(exc).__name__}: {exc}")
            return 400
        self.received.append(Received(path, headers, claims, payload))
        queue = self.script.get(name)
        return queue.pop(0) if queue else 201

    def _check_vapid(self, authorization: str) -> dict[str, Any]:
        scheme, _, params = authorization.partition(" ")
        assert scheme == "vapid", f"expected the vapid scheme, got {scheme!r}"
        parts = dict(item.split("=", 1) for item in params.split(","))
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(parts["k"]))
        claims: dict[str, Any] = jwt.decode(
            parts["t"], key=public, algorithms=["ES256"], audience=self.base_url
        )
        assert claims["exp"] <= time.time() + 24 * 3600, "a VAPID token lives 24 h at most"
        assert claims["sub"].startswith(("mailto:", "https:"))
        claims["k"] = parts["k"]
        return claims


@contextmanager
def running_push_service() -> Iterator[PushService]:
    port = free_port()
    service = PushService(base_url=f"http://127.0.0.1:{port}")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = service.handle(self.path, headers, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
