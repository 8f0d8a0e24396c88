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


# The visible unsubscribe link of mail a player may opt out of (marketing, achievements),
# below the message: `List-Unsubscribe` alone shows only in some mail programs. `$kind`
# names the category as the player's preferences do.
UNSUBSCRIBE_FOOTERS: dict[str, MailTemplate] = {
    "en": MailTemplate(
        subject="",
        text="\n\n-- \nYou get this mail because your notification settings allow $kind. "
        "To stop them, unsubscribe here:\n$link\n",
        html="<hr><p>You get this mail because your notification settings allow $kind. "
        '<a href="$link">Unsubscribe</a></p>',
    ),
    "de": MailTemplate(
        subject="",
        text="\n\n-- \nDu bekommst diese E-Mail, weil deine Benachrichtigungseinstellungen "
        "$kind erlauben. Abbestellen kannst du sie hier:\n$link\n",
        html="<hr><p>Du bekommst diese E-Mail, weil deine Benachrichtigungseinstellungen "
        '$kind erlauben. <a href="$link">Abbestellen</a></p>',
    ),
}
CATEGORY_NAMES: dict[str, dict[str, str]] = {
    "en": {"marketing": "news and offers", "achievements": "achievement news"},
    "de": {"marketing": "Neuigkeiten und Angebote", "achievements": "Erfolgsmeldungen"},
}


class UnknownTemplate(KeyError):
    pass


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str
    language: str  # the language of the version used: the mail's Content-Language


def _version(versions: dict[str, MailTemplate], language: str | None) -> str:
    """The language of `versions` a reader of `language` gets: theirs, or English."""
    primary = (language or FALLBACK_LANGUAGE).split("-")[0].lower()
    return primary if primary in versions else FALLBACK_LANGUAGE


def _filled(template: MailTemplate, variables: dict[str, Any], language: str) -> RenderedMail:
    plain = {k: str(v) for k, v in variables.items()}
    escaped = {k: html.escape(v, quote=True) for k, v in plain.items()}
    return RenderedMail(
        subject=Template(template.subject).safe_substitute(plain),
        text=Template(template.text).safe_substitute(plain),
        html=Template(template.html).safe_substitute(escaped),
        language=language,
    )


def render(name: str, language: str | None, variables: dict[str, Any]) -> RenderedMail:
    versions = TEMPLATES.get(name)
    if versions is None:
        raise UnknownTemplate(name)
    used = _version(versions, language)
    return _filled(versions[used], variables, used)


def unsubscribe_footer(language: str | None, category: str, link: str) -> RenderedMail:
    """The footer in the mail's language (or English), naming the category to opt out of."""
    used = _version(UNSUBSCRIBE_FOOTERS, language)
    kind = CATEGORY_NAMES[used].get(category, category)
    return _filled(UNSUBSCRIBE_FOOTERS[used], {"kind": kind, "link": link}, used)
