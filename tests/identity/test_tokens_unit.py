import time
import uuid
from datetime import UTC, datetime

import pytest

from gameportal.config import Settings
from gameportal.identity import tokens as tokens_module
from gameportal.identity.tokens import (
    AccessTokens,
    InvalidAccessToken,
    hash_refresh_token,
    new_refresh_token,
)


def _tokens(**overrides: object) -> AccessTokens:
    return AccessTokens(Settings(secret_key="k" * 40, **overrides))  # type: ignore[arg-type]


def test_refresh_tokens_are_256_bit_and_hashed() -> None:
    token = new_refresh_token()
    assert len(token) >= 43  # 32 bytes, base64url
    assert new_refresh_token() != token
    assert len(hash_refresh_token(token)) == 64
    assert hash_refresh_token(token) == hash_refresh_token(token)


def test_a_cached_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = _tokens(access_token_ttl_seconds=30)
    token = tokens.issue(
        user_id=uuid.uuid4(), session_id=uuid.uuid4(), roles=["user"], now=datetime.now(UTC)
    )
    assert tokens.decode(token).roles == ("user",)  # now cached
    later = time.time() + 30 + 6  # past exp and the 5 s leeway
    monkeypatch.setattr(tokens_module.time, "time", lambda: later)
    with pytest.raises(InvalidAccessToken, match="expired"):
        tokens.decode(token)


def test_a_token_of_another_key_is_not_served_from_cache() -> None:
    ours, theirs = _tokens(), AccessTokens(Settings(secret_key="z" * 40))
    token = theirs.issue(
        user_id=uuid.uuid4(), session_id=uuid.uuid4(), roles=["admin"], now=datetime.now(UTC)
    )
    with pytest.raises(InvalidAccessToken):
        ours.decode(token)
    with pytest.raises(InvalidAccessToken):
        ours.decode(token)  # a failure is never cached as a success
