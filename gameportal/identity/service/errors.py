"""Identity's domain errors; the one error handler renders them all."""

from __future__ import annotations

from gameportal.errors import Conflict, Forbidden, NotFound, PortalError, Unauthorized


class InvalidCredentials(Unauthorized):
    slug = "invalid-credentials"
    title = "Invalid email or password"


class AccountBlocked(Forbidden):
    slug = "account-blocked"
    title = "This account is blocked"


class TooManyAttempts(PortalError):
    status = 429
    slug = "too-many-login-attempts"
    title = "Too many failed login attempts"


class TooManyRegistrations(PortalError):
    status = 429
    slug = "too-many-registrations"
    title = "Too many accounts registered from this network"


class InvalidRefreshToken(Unauthorized):
    slug = "invalid-refresh-token"
    title = "Invalid refresh token"


class EmailTaken(Conflict):
    slug = "email-taken"
    title = "Email already registered"


class LastAdmin(Conflict):
    slug = "last-admin"
    title = "The last administrator cannot lose the role"


class SessionNotFound(NotFound):
    slug = "session-not-found"
    title = "Session not found"


class UserNotFound(NotFound):
    slug = "user-not-found"
    title = "User not found"


class WrongPassword(Forbidden):
    """The account's own password, re-entered to confirm a sensitive change, was wrong.
    Not a 401: the access token is fine and the client must not discard it."""

    slug = "wrong-password"
    title = "The password is wrong"
