"""The channels gameportal delivers through itself. Each module provides its handler."""

from gameportal.config import Settings, get_settings
from gameportal.notifications.registry import register_handler


def register_builtin_handlers(settings: Settings | None = None) -> None:
    from gameportal.notifications.channels.email import EmailChannel
    from gameportal.notifications.channels.in_app import deliver_in_app
    from gameportal.notifications.channels.push import PushChannel

    settings = settings or get_settings()
    register_handler("IN_APP", deliver_in_app)
    register_handler("EMAIL", EmailChannel(settings))
    if settings.vapid_private_key:
        register_handler("PUSH", PushChannel(settings))
    # Without a VAPID key PUSH messages wait, PENDING, for a worker that has one.
