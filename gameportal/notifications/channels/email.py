"""Email over SMTP: text and HTML parts, rendered from a template in the recipient's
language or given ready in the payload (HTML then escaped, never trusted)."""

from __future__ import annotations

import asyncio
import email.policy
import html
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib
import structlog

from gameportal.config import Settings
from gameportal.notifications import outbox, sealed
from gameportal.notifications.backoff import Schedule
from gameportal.notifications.fanout import fan_out
from gameportal.notifications.registry import (
    ClaimedMessage,
    Delivery,
    PermanentError,
    RetryLater,
)
from gameportal.notifications.schemas import OPTIONAL_CATEGORIES, opted_out
from gameportal.notifications.templates import (
    FALLBACK_LANGUAGE,
    UnknownTemplate,
    render,
    unsubscribe_footer,
)
from gameportal.notifications.unsubscribe import Unsubscribe, sign
from gameportal.web.links import one_click_unsubscribe_url, unsubscribe_url

log = structlog.get_logger(__name__)

_RECIPIENT_SQL = """
SELECT u.email, u.name, u.preferences->>'language' AS language,
       coalesce(p.opt_outs, ARRAY[]::text[]) AS opt_outs
FROM users u LEFT JOIN notification_preferences p ON p.user_id = u.id
WHERE u.id = $1
"""

# Only while the lease holds: a worker that lost the message must not annotate it.
_NOTE_SQL = "UPDATE messages SET note = $2 WHERE id = $1 AND lease_owner = $3"


def message_id_domain(settings: Settings) -> str:
    """The right-hand side of our Message-IDs: the domain mail is sent from (GAMEPORTAL_MAIL_
    FROM), else the public base URL's host; never this machine's name, which says nothing
    to a receiver and may not be a public name at all."""
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2].strip("[]")
    if not domain:
        domain = urlsplit(settings.public_base_url).hostname or "localhost"
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return "localhost"


class EmailChannel:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.schedule = Schedule.of(settings)
        self.message_id_domain = message_id_domain(settings)

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
            try:
                await self.send(mail)
            except TemporarySmtpFailure as exc:
                delay = self.schedule.next_delay(message.retry_count)
                if delay is None:
                    raise PermanentError(
                        f"gave up after {message.retry_count + 1} attempts over "
                        f"{self.settings.smtp_retry_hours:g} h of temporary failures "
                        f"(GAMEPORTAL_SMTP_RETRY_HOURS); the last: {exc}"
                    ) from None
                raise RetryLater(str(exc), delay=delay) from None
            return
        # Development: no mail server, so the mail goes where a developer can read it.
        path = await asyncio.to_thread(outbox.write, self.settings.outbox_dir, message.id, mail)
        await delivery.pool.execute(
            _NOTE_SQL, message.id, f"no SMTP server is set: written to {path}", delivery.worker
        )
        log.info("email_written_to_outbox", message_id=str(message.id), path=str(path))

    def compose(
        self, message: ClaimedMessage, address: str, name: str, language: str | None
    ) -> EmailMessage:
        payload = message.payload
        if payload.get("template"):
            variables = {"name": name, **payload.get("variables", {}), **self._unsealed(message)}
            try:
                rendered = render(payload["template"], language, variables)
            except UnknownTemplate:
                raise PermanentError(f"no mail template {payload['template']!r}") from None
            subject, text, body_html = rendered.subject, rendered.text, rendered.html
            written_in = rendered.language  # the recipient's, or English if none is made
        else:
            subject = payload.get("subject") or ""
            text = payload.get("body") or ""
            body_html = "<p>" + html.escape(text).replace("\n", "<br>") + "</p>"
            written_in = payload.get("language") or FALLBACK_LANGUAGE
        # The modern policy quotes and encodes display names: a player named `Jö <b>`
        # must not break (or inject into) the To header.
        mail = EmailMessage(policy=email.policy.SMTP)
        mail["From"] = self.settings.mail_from
        mail["To"] = Address(display_name=name, addr_spec=address)
        mail["Subject"] = subject
        # One id per message, the same on every attempt: a receiver that got a mail twice
        # (its reply to DATA lost, so sent again) can tell.
        mail["Message-ID"] = f"<{message.id}@{self.message_id_domain}>"
        mail["Date"] = formatdate(usegmt=True)
        category = payload.get("category")
        if category in OPTIONAL_CATEGORIES and message.recipient_user_id is not None:
            token = sign(
                self.settings.secret_key,
                Unsubscribe(message.recipient_user_id, "EMAIL", str(category)),
            )
            # The header for mail programs (RFC 8058's one-click POST); in the body, a link
            # a person opens: a page with a button.
            mail["List-Unsubscribe"] = f"<{one_click_unsubscribe_url(self.settings, token)}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            footer = unsubscribe_footer(
                written_in, str(category), unsubscribe_url(self.settings, token)
            )
            text += footer.text
            body_html += footer.html
        mail.set_content(text)
        mail.add_alternative(body_html, subtype="html")
        # Only now: set_content() clears every Content-* header of the message.
        mail["Content-Language"] = written_in
        return mail

    def _unsealed(self, message: ClaimedMessage) -> dict[str, Any]:
        value = message.payload.get(sealed.FIELD)
        if value is None:
            return {}
        if value == sealed.ERASED or message.recipient_user_id is None:
            raise PermanentError(
                "its one-time link was erased when the message ended; the player has to ask "
                "for a new one"
            )
        try:
            return sealed.unseal(self.settings.secret_key, message.recipient_user_id, value)
        except sealed.Unsealable:
            raise PermanentError(
                "its sealed variables do not open: was GAMEPORTAL_SECRET_KEY changed since it "
                "was queued? The player has to ask for a new link"
            ) from None

    async def send(self, mail: EmailMessage) -> None:
        """One SMTP conversation, from connecting to QUIT, within
        GAMEPORTAL_SMTP_TIMEOUT_SECONDS as a whole: aiosmtplib's own timeout bounds each
        reply, so a server answering slowly but steadily could hold a send (and the
        worker's shutdown) for minutes. Raises PermanentError on a 5xx reply and
        TemporarySmtpFailure on anything worth another try."""
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password,
            use_tls=s.smtp_tls,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout_seconds,
            tls_context=ssl.create_default_context() if s.smtp_tls or s.smtp_starttls else None,
        )
        accepted = False
        try:
            async with asyncio.timeout(s.smtp_timeout_seconds):
                await client.connect()
                await client.send_message(mail)
                accepted = True
                await client.quit()
        except Exception as exc:
            if accepted:
                # The server took the mail; only the goodbye went wrong. Sending it again
                # would deliver it twice.
                log.info("smtp_quit_failed", error=f"{type(exc).__name__}: {exc}")
                return
            raise _classified(exc, s.smtp_timeout_seconds) from None
        finally:
            client.close()


class TemporarySmtpFailure(Exception):
    """An SMTP failure worth another try: a 4xx reply, 421, a connection refused, reset or
    timed out, a TLS or login problem (the operator can fix those meanwhile)."""


def _reply(code: int, message: str) -> str:
    return f"{code} {message}".strip()


def _classified(exc: Exception, timeout: float) -> Exception:
    """What the worker is to make of an SMTP failure: PermanentError for a 5xx reply
    (RFC 5321 4.2.1: do not repeat the same request), TemporarySmtpFailure otherwise. The
    error names the step and quotes the server's reply."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        # Every recipient refused (one that accepted would have let the mail through).
        refusals = "; ".join(
            f"{_reply(r.code, r.message)} for <{r.recipient}>" for r in exc.recipients
        )
        if all(500 <= r.code < 600 for r in exc.recipients):
            return PermanentError(f"SMTP refused the recipient at RCPT: {refusals}")
        return TemporarySmtpFailure(f"SMTP deferred the recipient at RCPT: {refusals}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        step = _STEPS.get(type(exc), "the conversation")
        text = f"SMTP {_reply(exc.code, exc.message)} at {step}"
        if 500 <= exc.code < 600 and not isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return PermanentError(text)
        # 4xx (421 included) is temporary by definition. A refused login is the relay's
        # configuration, not this mail's fault: it waits for the operator to fix it.
        return TemporarySmtpFailure(text)
    if isinstance(exc, ValueError):  # an address aiosmtplib will not put on the wire
        return PermanentError(f"cannot send to this address: {exc}")
    if isinstance(exc, TimeoutError):
        return TemporarySmtpFailure(f"the SMTP conversation timed out after {timeout:g} s")
    return TemporarySmtpFailure(f"{type(exc).__name__}: {exc}")


_STEPS: dict[type[Exception], str] = {
    aiosmtplib.SMTPConnectResponseError: "the greeting",
    aiosmtplib.SMTPHeloError: "EHLO",
    aiosmtplib.SMTPAuthenticationError: "AUTH",
    aiosmtplib.SMTPSenderRefused: "MAIL FROM",
    aiosmtplib.SMTPRecipientRefused: "RCPT",
    aiosmtplib.SMTPDataError: "DATA",
}
