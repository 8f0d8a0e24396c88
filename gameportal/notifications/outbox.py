"""The development mail outbox: while no SMTP server is configured, every mail is written
to a folder, one `.eml` file per message, where `gameportal outbox` lists and shows them.
It is how a developer reads the verification and reset links the portal sends.

Files are named by the queue message's id (UUIDv7, so names sort by time), which also
makes a retried delivery overwrite its own file instead of adding a second copy.
"""

from __future__ import annotations

import email.policy
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

_NAME = re.compile(r"^[0-9a-f-]{36}\.eml$")
_PREFIX = re.compile(r"^[0-9a-f-]{1,36}$")
_URL = re.compile(r"https?://[^\s<>\"')]+")


def write(folder: Path, message_id: uuid.UUID, mail: EmailMessage) -> Path:
    """Write one mail; atomic, so a reader never sees half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{message_id}.eml"
    partial = folder / f".{message_id}.partial"
    partial.write_bytes(mail.as_bytes(policy=email.policy.SMTP))
    os.replace(partial, path)
    return path


@dataclass(frozen=True)
class OutboxMail:
    id: str
    path: Path
    to: str
    subject: str
    date: datetime | None
    mail: EmailMessage

    @property
    def text(self) -> str:
        part = self.mail.get_body(preferencelist=("plain", "html"))
        return "" if part is None else str(part.get_content())

    @property
    def links(self) -> list[str]:
        return list(dict.fromkeys(_URL.findall(self.text)))


def _read(path: Path) -> OutboxMail:
    mail = message_from_bytes(path.read_bytes(), _class=EmailMessage, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    try:
        date = parsedate_to_datetime(str(mail["Date"])) if mail["Date"] else None
    except (TypeError, ValueError):
        date = None
    return OutboxMail(
        id=path.stem,
        path=path,
        to=str(mail["To"] or ""),
        subject=str(mail["Subject"] or ""),
        date=date,
        mail=mail,
    )


def list_mails(folder: Path, *, to: str | None = None, limit: int = 20) -> list[OutboxMail]:
    """The newest mails first, optionally only those to an address containing `to`."""
    if not folder.is_dir():
        return []
    found: list[OutboxMail] = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name, reverse=True):
        if not _NAME.match(path.name):
            continue
        mail = _read(path)
        if to and to.lower() not in mail.to.lower():
            continue
        found.append(mail)
        if len(found) >= limit:
            break
    return found


def find(folder: Path, key: str) -> OutboxMail | None:
    """A mail by its id or a unique prefix of it; `latest` is the newest."""
    if key == "latest":
        newest = list_mails(folder, limit=1)
        return newest[0] if newest else None
    if not folder.is_dir() or not _PREFIX.match(key):
        return None
    matches = [p for p in folder.glob(f"{key}*.eml") if _NAME.match(p.name)]
    return _read(matches[0]) if len(matches) == 1 else None
