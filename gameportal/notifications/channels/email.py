"""Email over SMTP: text and HTML parts, rendered from a template in the recipient's
language or given ready in the payload (HTML then escaped, never trusted)."""

from __future__ import annotations

import asyncio
import email.policy
import html
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib
import structlog

from gameportal.config import Settings
from gameportal.notifications import outbox
from gameportal.notifications.fanout import fan_out
from gameportal.notifications.registry import ClaimedMessage, Delivery, PermanentError
from gameportal.notifications.schemas import OPTIONAL_CATEGORIES, opted_out
from gameportal.notifications.templates import UnknownTemplate, render
from gameportal.notifications.unsubscribe import Unsubscribe, sign

log = structlog.get_logger(__name__)

_RECIPIENT_SQL = """
SELECT u.email, u.name, u.preferences->>'language' AS language,
       coalesce(p.opt_outs, ARRAY[]::text[]) AS opt_outs
FROM users u LEFT JOIN notification_preferences p ON p.user_id = u.id
WHERE u.id = $1
"""

# Only while the lease holds: a worker that lost the message must not annotate it.
_NOTE_SQL = "UPDATE messages SET note = $2 WHERE id = $1 AND lease_owner = $3"


class EmailChannel:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, message: ClaimedMessage, delivery: Delivery) -> None:
        if message.recipient_user_id is None:
            await fan_out(message, delivery)
            return
        recipient = await delivery.pool.fetchrow(_RECIPIENT_SQL, message.recipient_user_id)
        if recipient is None:
            raise PermanentError("the recipient no longer exists")
        if opted_out(list(recipient["opt_outs"]), "EMAIL", message.payload.get("category")):
            # Done, not failed: not sending is exactly what the player asked for.
            log.info("email_skipped_opted_out", message_id=str(message.id))
            return
        try:
            mail = self.compose(
                message, recipient["email"], recipient["name"], recipient["language"]
            )
        except (ValueError, TypeError) as exc:  # an address or name mail cannot carry
            raise PermanentError(f"cannot compose the mail: {exc}") from None
        if self.settings.smtp_host:
            await self.send(mail)
            return
        # Development: no mail server, so the mail goes where a developer can read it.
        path = await asyncio.to_thread(
            outbox.write, self.settings.outbox_dir, message.id, mail
        )
        await delivery.pool.execute(
            _NOTE_SQL, message.id, f"no SMTP server is set: written to {path}", delivery.worker
        )
        log.info("email_written_to_outbox", message_id=str(message.id), path=str(path))

    def compose(
        self, message: ClaimedMessage, address: str, name: str, language: str | None
    ) -> EmailMessage:
        payload = message.payload
        if payload.get("template"):
            try:
                rendered = render(
                    payload["template"], language, {"name": name, **payload.get("variables", {})}
                )
            except UnknownTemplate:
                raise PermanentError(f"no mail template {payload['template']!r}") from None
            subject, text, body_html = rendered.subject, rendered.text, rendered.html
        else:
            subject = payload.get("subject") or ""
            text = payload.get("body") or ""
            body_html = "<p>" + html.escape(text).replace("\n", "<br>") + "</p>"
        # The modern policy quotes and encodes display names: a player named `Jö <b>`
        # must not break (or inject into) the To header.
        mail = EmailMessage(policy=email.policy.SMTP)
        mail["From"] = self.settings.mail_from
        mail["To"] = Address(display_name=name, addr_spec=address)
        mail["Subject"] = subject
        mail["Message-ID"] = make_msgid(idstring=str(message.id))
        mail["Date"] = formatdate(usegmt=True)
        mail["Content-Language"] = language or "en"
        category = payload.get("category")
        if category in OPTIONAL_CATEGORIES and message.recipient_user_id is not None:
            token = sign(
                self.settings.secret_key,
                Unsubscribe(message.recipient_user_id, "EMAIL", str(category)),
            )
            link = f"{self.settings.public_base_url.rstrip('/')}/api/v1/unsubscribe?token={token}"
            mail["List-Unsubscribe"] = f"<{link}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(text)
        mail.add_alternative(body_html, subtype="html")
        return mail

    async def send(self, mail: EmailMessage) -> None:
        s = self.settings
        try:
            await aiosmtplib.send(
                mail,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password,
                use_tls=s.smtp_tls,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout_seconds,
                tls_context=ssl.create_default_context() if s.smtp_tls or s.smtp_starttls else None,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"the mail server refused the address: {exc}") from None
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:  # a permanent SMTP answer
                raise PermanentError(f"SMTP {exc.code}: {exc.message}") from None
            raise
