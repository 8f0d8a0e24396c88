"""`gameportal create-admin`: the first administrator, made from the command line."""

from __future__ import annotations

import unicodedata
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email

from gameportal.config import Settings
from gameportal.db import Database
from gameportal.errors import InvalidField
from gameportal.identity import repository as repo
from gameportal.identity.addresses import refuse_lookalikes
from gameportal.identity.passwords import Passwords
from gameportal.identity.service import new_user
from gameportal.kit.time import utcnow
from gameportal.models import normalize_email, normalize_roles


async def create_or_promote_admin(
    settings: Settings, url: str, *, email: str, name: str, password: str
) -> str:
    try:
        # Folded and validated as the API does (identity/addresses.py).
        valid = validate_email(unicodedata.normalize("NFKC", email), check_deliverability=False)
        email = normalize_email(valid.normalized)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email: {exc}") from None
    passwords = Passwords(settings)
    try:
        passwords.check_strength(password, field="password", user_inputs=[email, name])
    except InvalidField as exc:
        raise ValueError(f"password refused: {exc.detail}") from None
    db = await Database.connect(settings.model_copy(update={"database_url": url}))
    try:
        async with db.sessionmaker() as session, session.begin():
            existing = await repo.user_by_email(session, email)
            password_hash = await passwords.hash(password)
            if existing is not None:
                existing.roles = normalize_roles([*existing.roles, "admin"])
                existing.password_hash = password_hash
                await repo.void_account_tokens(session, existing.id, purpose="password_reset")
                existing.is_blocked = False
                await repo.announce_user_changed(session, existing.id)
                return f"promoted {email} to admin (password reset)"
            refuse_lookalikes(email)  # a new account, as registration has it
            session.add(
                new_user(
                    email=email,
                    name=name,
                    password_hash=password_hash,
                    roles=["admin"],
                    now=utcnow(),
                )
            )
            return f"created admin {email}"
    finally:
        await db.close()


async def prune_identity(settings: Settings, url: str) -> repo.Pruned:
    db = await Database.connect(settings.model_copy(update={"database_url": url}))
    try:
        async with db.sessionmaker() as session, session.begin():
            return await repo.prune(
                session,
                retention=timedelta(days=settings.session_retention_days),
                idle=timedelta(days=settings.session_idle_days),
                # The longer of the two windows the throttle table counts in.
                window=timedelta(
                    seconds=max(
                        settings.login_failure_window_seconds,
                        settings.registration_window_seconds,
                    )
                ),
            )
    finally:
        await db.close()
