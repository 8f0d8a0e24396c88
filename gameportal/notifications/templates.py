"""Mail templates per language. Variables are escaped for the HTML part; a language the
template lacks falls back to English."""

from __future__ import annotations

import html
from dataclasses import dataclass
from string import Template
from typing import Any

FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True)
class MailTemplate:
    subject: str
    text: str
    html: str


TEMPLATES: dict[str, dict[str, MailTemplate]] = {
    "verify_email": {
        "en": MailTemplate(
            subject="Confirm your email address",
            text=(
                "Hello $name,\n\nplease confirm that this address is yours by opening this "
                "link within $hours hours:\n\n$link\n\nIf you did not create an account, "
                "ignore this message.\n"
            ),
            html=(
                '<p>Hello $name,</p><p>please <a href="$link">confirm that this address is '
                "yours</a> within $hours hours.</p><p>If you did not create an account, "
                "ignore this message.</p>"
            ),
        ),
        "de": MailTemplate(
            subject="Bestätige deine E-Mail-Adresse",
            text=(
                "Hallo $name,\n\nbitte bestätige innerhalb von $hours Stunden, dass diese "
                "Adresse dir gehört:\n\n$link\n\nWenn du kein Konto angelegt hast, "
                "ignoriere diese Nachricht.\n"
            ),
            html=(
                '<p>Hallo $name,</p><p>bitte <a href="$link">bestätige</a> innerhalb von '
                "$hours Stunden, dass diese Adresse dir gehört.</p><p>Wenn du kein Konto "
                "angelegt hast, ignoriere diese Nachricht.</p>"
            ),
        ),
    },
    "password_reset": {
        "en": MailTemplate(
            subject="Reset your password",
            text=(
                "Hello $name,\n\nSomeone asked to reset the password of your account. "
                "If it was you, open this link within $minutes minutes:\n\n$link\n\n"
                "If it was not you, ignore this message: your password stays as it is.\n"
            ),
            html=(
                "<p>Hello $name,</p><p>Someone asked to reset the password of your account. "
                'If it was you, <a href="$link">choose a new password</a> within $minutes '
                "minutes.</p><p>If it was not you, ignore this message: your password stays "
                "as it is.</p>"
            ),
        ),
        "de": MailTemplate(
            subject="Passwort zurücksetzen",
            text=(
                "Hallo $name,\n\njemand möchte das Passwort deines Kontos zurücksetzen. "
                "Wenn du es warst, öffne diesen Link innerhalb von $minutes Minuten:\n\n"
                "$link\n\nWenn nicht, ignoriere diese Nachricht: dein Passwort bleibt gleich.\n"
            ),
            html=(
                "<p>Hallo $name,</p><p>jemand möchte das Passwort deines Kontos zurücksetzen. "
                'Wenn du es warst, <a href="$link">wähle ein neues Passwort</a> innerhalb von '
                "$minutes Minuten.</p><p>Wenn nicht, ignoriere diese Nachricht: dein Passwort "
                "bleibt gleich.</p>"
            ),
        ),
    },
}


class UnknownTemplate(KeyError):
    pass


def render(name: str, language: str | None, variables: dict[str, Any]) -> MailTemplate:
    versions = TEMPLATES.get(name)
    if versions is None:
        raise UnknownTemplate(name)
    primary = (language or FALLBACK_LANGUAGE).split("-")[0].lower()
    template = versions.get(primary) or versions[FALLBACK_LANGUAGE]
    plain = {k: str(v) for k, v in variables.items()}
    escaped = {k: html.escape(v, quote=True) for k, v in plain.items()}
    return MailTemplate(
        subject=Template(template.subject).safe_substitute(plain),
        text=Template(template.text).safe_substitute(plain),
        html=Template(template.html).safe_substitute(escaped),
    )
