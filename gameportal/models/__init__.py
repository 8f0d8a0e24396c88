"""Every ORM table, one module per seed collection."""

from gameportal.models.base import Base
from gameportal.models.content import (
    CONTENT_FORMATS,
    CONTENT_STATUSES,
    CONTENT_TYPES,
    Content,
    ContentRevision,
)
from gameportal.models.liveops import (
    DEVICE_TYPES,
    ABExperimentLog,
    ABRule,
    CampaignIpRange,
    MarketingCampaign,
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
from gameportal.models.progress import (
    LEADERBOARD_PERIODS,
    LEVEL_BASES,
    Achievement,
    AchievementUnlock,
    GameApiKey,
    GameLevels,
    LeaderboardScore,
    ProgressUpdate,
    UserProgress,
)
from gameportal.models.push import PushDelivery, PushSubscription
from gameportal.models.session import LoginThrottle, SecurityEvent, Session, SpentRefreshToken
from gameportal.models.stream_ticket import StreamTicket
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
    "DEVICE_TYPES",
    "LEADERBOARD_PERIODS",
    "LEVEL_BASES",
    "MEDIA_STATUSES",
    "MESSAGE_STATUSES",
    "MESSAGE_TYPES",
    "ROLES",
    "ABExperimentLog",
    "ABRule",
    "AccountToken",
    "Achievement",
    "AchievementUnlock",
    "Base",
    "BroadcastProgress",
    "CampaignIpRange",
    "Content",
    "ContentRevision",
    "GameApiKey",
    "GameLevels",
    "LeaderboardScore",
    "LoginThrottle",
    "MarketingCampaign",
    "MediaAsset",
    "Message",
    "NotificationPreference",
    "NotificationRead",
    "ProgressUpdate",
    "PushDelivery",
    "PushSubscription",
    "SecurityEvent",
    "Session",
    "SpentRefreshToken",
    "StreamTicket",
    "User",
    "UserProgress",
    "normalize_email",
    "normalize_roles",
]
