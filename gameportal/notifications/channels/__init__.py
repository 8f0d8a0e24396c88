"""The channels gameportal delivers through itself. Each module registers its handler."""

from gameportal.notifications.registry import register_handler


def register_builtin_handlers() -> None:
    from gameportal.notifications.channels.in_app import deliver_in_app

    register_handler("IN_APP", deliver_in_app)
