"""Every ORM table, one module per seed collection."""

from gameportal.models.base import Base
from gameportal.models.session import LoginThrottle, SecurityEvent, Session, SpentRefreshToken
from gameportal.models.user import ROLES, User, normalize_email, normalize_roles

__all__ = [
    "ROLES",
    "Base",
    "LoginThrottle",
    "SecurityEvent",
    "Session",
    "SpentRefreshToken",
    "User",
    "normalize_email",
    "normalize_roles",
]
