"""Identity rules: registration, login, refresh rotation, device sessions, admin changes.

Services flush, never commit; the request's session commits. The few writes that must
survive an error answer (a failed login, a replayed refresh token) go through the pool in
their own statement, by design.
"""

from __future__ import annotations

from gameportal.identity.service.account import (
    change_password,
    delete_me,
    end_my_other_sessions,
    end_my_session,
    my_sessions,
    update_me,
)
from gameportal.identity.service.account_emails import (
    InvalidResetToken,
    InvalidVerificationToken,
    request_email_verification,
    request_password_reset,
    request_password_reset_after_answer,
    reset_password,
    send_email_verification,
    verify_email,
)
from gameportal.identity.service.admin import (
    admin_end_user_sessions,
    admin_get_user,
    admin_list_users,
    admin_security_events,
    admin_update_user,
    admin_user_sessions,
)
from gameportal.identity.service.auth import (
    login,
    logout,
    logout_by_refresh_token,
    new_user,
    refresh,
    register,
)
from gameportal.identity.service.context import (
    AuthResult,
    ClientInfo,
    Identity,
    IssuedTokens,
    Principal,
)
from gameportal.identity.service.errors import (
    AccountBlocked,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    LastAdmin,
    SessionNotFound,
    TooManyAttempts,
    TooManyRegistrations,
    UserNotFound,
    WrongPassword,
)

__all__ = [
    "AccountBlocked",
    "AuthResult",
    "ClientInfo",
    "EmailTaken",
    "Identity",
    "InvalidCredentials",
    "InvalidRefreshToken",
    "InvalidResetToken",
    "InvalidVerificationToken",
    "IssuedTokens",
    "LastAdmin",
    "Principal",
    "SessionNotFound",
    "TooManyAttempts",
    "TooManyRegistrations",
    "UserNotFound",
    "WrongPassword",
    "admin_end_user_sessions",
    "admin_get_user",
    "admin_list_users",
    "admin_security_events",
    "admin_update_user",
    "admin_user_sessions",
    "change_password",
    "delete_me",
    "end_my_other_sessions",
    "end_my_session",
    "login",
    "logout",
    "logout_by_refresh_token",
    "my_sessions",
    "new_user",
    "refresh",
    "register",
    "request_email_verification",
    "request_password_reset",
    "request_password_reset_after_answer",
    "reset_password",
    "send_email_verification",
    "update_me",
    "verify_email",
]
