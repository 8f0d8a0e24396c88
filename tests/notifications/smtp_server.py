"""An SMTP server on loopback that answers what the test says: per connection, a reply
for any step of the conversation (the greeting, EHLO, MAIL, RCPT, DATA, the end of the
message, RSET, QUIT), a pause before each reply, or a connection dropped mid-way.
Written on raw asyncio streams, since a real server library answers only correctly."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

from tests.net import free_port

# What a well-behaved server answers at each step.
DEFAULT_REPLIES = {
    "CONNECT": "220 scripted.test ESMTP",
    "EHLO": "250-scripted.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING",
    "HELO": "250 scripted.test",
    "MAIL": "250 2.1.0 OK",
    "RCPT": "250 2.1.5 OK",
    "DATA": "354 go ahead",
    "END": "250 2.0.0 queued",
    "RSET": "250 2.0.0 OK",
    "NOOP": "250 2.0.0 OK",
    "QUIT": "221 2.0.0 bye",
}

# A reply that closes the connection without answering (a reset mid-conversation).
DROP = "DROP"


@dataclass
class Script:
    """What one connection hears: replies by step (default: DEFAULT_REPLIES), and how long
    the server takes before each reply, sent one byte at a time over that pause (a slow
    server that never stays silent for long)."""

    replies: dict[str, str] = field(default_factory=dict)
    pause: float = 0.0


@dataclass
class ScriptedSmtp:
    port: int
    # One script per connection, in order; connections past the end get `then`.
    scripts: list[Script] = field(default_factory=list)
    then: Script = field(default_factory=Script)
    connections: int = 0
    # The steps each connection went through, e.g. ["CONNECT", "EHLO", "MAIL", "RCPT 451"].
    transcripts: list[list[str]] = field(default_factory=list)
    delivered: list[EmailMessage] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        task.add_done_callback(self.handlers.discard)
        script = (
            self.scripts[self.connections] if self.connections < len(self.scripts) else self.then
        )
        self.connections += 1
        transcript: list[str] = []
        self.transcripts.append(transcript)

        async def reply(step: str) -> bool:
            """Answer `step`; False when the connection is to end here."""
            text = script.replies.get(step, DEFAULT_REPLIES[step])
            transcript.append(f"{step} {text.split(' ', 1)[0][:3]}")
            if text == DROP:
                return False
            data = (text + "\r\n").encode()
            if script.pause:
                for i in range(len(data)):
                    await asyncio.sleep(script.pause / len(data))
                    writer.write(data[i : i + 1])
                    await writer.drain()
            else:
                writer.write(data)
                await writer.drain()
            return not text.startswith("421") and step != "QUIT"

        try:
            if not await reply("CONNECT"):
                return
            while line := await reader.readline():
                verb = line.decode("ascii", "replace").split(" ", 1)[0].strip().upper()
                step = verb if verb in DEFAULT_REPLIES else "NOOP"
                if not await reply(step):
                    return
                if step == "DATA" and script.replies.get("DATA", "354").startswith("354"):
                    content = await reader.readuntil(b"\r\n.\r\n")
                    accepted = script.replies.get("END", DEFAULT_REPLIES["END"])
                    if accepted.startswith("250"):
                        body = content[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
                        self.delivered.append(
                            email.message_from_bytes(body, policy=email.policy.default)
                        )
                    if not await reply("END"):
                        return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def scripted_smtp(
    *scripts: Script, then: Script | None = None, port: int | None = None
) -> AsyncIterator[ScriptedSmtp]:
    """A server on 127.0.0.1 (`port`, or a free one) for the duration."""
    smtp = ScriptedSmtp(port=port or free_port(), scripts=list(scripts), then=then or Script())
    server = await asyncio.start_server(smtp.handle, "127.0.0.1", smtp.port)
    try:
        yield smtp
    finally:
        server.close()
        for task in list(smtp.handlers):  # a slow conversation the client gave up on
            task.cancel()
        await asyncio.gather(*smtp.handlers, return_exceptions=True)
        await server.wait_closed()
