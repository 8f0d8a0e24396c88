"""All identity SQL. ORM statements for writes and admin paths; single Core/asyncpg
statements for the hot paths (the per-request session check, refresh rotation, login
throttling), which must also commit on their own when the request answers with an error."""

from __future__ import annotations

from gameportal.identity.repository.account_tokens import (
    account_token_owner,
    add_account_token,
    live_account_token_owner,
    recent_token_exists,
    spend_account_token,
    void_account_tokens,
)
from gameportal.identity.repository.events import (
    add_security_event,
    list_security_events,
    record_security_event,
)
from gameportal.identity.repository.sessions import (
    NewSessionRow,
    Pruned,
    get_session,
    list_live_sessions,
    live_session_roles,
    live_session_user,
    live_sessions_of,
    open_login_session,
    prune,
    revoke_session_of_refresh_token,
    revoke_session_of_spent_token,
    revoke_sessions,
    rotate_refresh_token,
    session_of_recently_spent_token,
)
from gameportal.identity.repository.throttle import (
    ThrottleKeys,
    ThrottleLimits,
    claim_login_attempt,
    claim_registration,
    login_attempt_failed,
    login_attempt_succeeded,
)
from gameportal.identity.repository.users import (
    USER_CHANNEL,
    UserFilter,
    announce_user_changed,
    delete_user,
    email_taken,
    get_user,
    list_users,
    lock_unblocked_admins,
    user_by_email,
    users_page,
)

__all__ = [
    "USER_CHANNEL",
    "NewSessionRow",
    "Pruned",
    "ThrottleKeys",
    "ThrottleLimits",
    "UserFilter",
    "account_token_owner",
    "add_account_token",
    "add_security_event",
    "announce_user_changed",
    "claim_login_attempt",
    "claim_registration",
    "delete_user",
    "email_taken",
    "get_session",
    "get_user",
    "list_live_sessions",
    "list_security_events",
    "list_users",
    "live_account_token_owner",
    "live_session_roles",
    "live_session_user",
    "live_sessions_of",
    "lock_unblocked_admins",
    "login_attempt_failed",
    "login_attempt_succeeded",
    "open_login_session",
    "prune",
    "recent_token_exists",
    "record_security_event",
    "revoke_session_of_refresh_token",
    "revoke_session_of_spent_token",
    "revoke_sessions",
    "rotate_refresh_token",
    "session_of_recently_spent_token",
    "spend_account_token",
    "user_by_email",
    "users_page",
    "void_account_tokens",
]
