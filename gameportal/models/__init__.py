"""Every ORM table, one module per seed collection."""

from gameportal.models.base import Base
from gameportal.models.content import (
    CONTENT_FORMATS,
    CONTENT_STATUSES,
    CONTENT_TYPES,
    Content,
    ContentRevision,
)
from gameportal.models.media import MEDIA_STATUSES, MediaAsset
from gameportal.models.message import (
    MESSAGE_STATUSES,
    MESSAGE_TYPES,
    BroadcastProgress,
    Message,
    NotificationPreference,
    NotificationRead,
)
from gameportal.models.push import PushDelivery, PushSubscription
from gameportal.models.session import LoginThrottle, SecurityEvent, Session, SpentRefreshToken
from gameportal.models.user import (
    ROLES,
    AccountToken,
    User,
    normalize_email,
    normalize_roles,
)

__all__ = [
    "CONTENT_FORMATS",
    "CONTENT_STATUSES",
    "CONTENT_TYPES",
    "MEDIA_STATUSES",
    "MESSAGE_STATUSES",
    "MESSAGE_TYPES",
    "ROLES",
    "AccountToken",
    "Base",
    "BroadcastProgress",
    "Content",
    "ContentRevision",
    "LoginThrottle",
    "MediaAsset",
    "Message",
    "NotificationPreference",
    "NotificationRead",
    "PushDelivery",
    "PushSubscription",
    "SecurityEvent",
    "Session",
    "SpentRefreshToken",
    "User",
    "normalize_email",
    "normalize_roles",
]
