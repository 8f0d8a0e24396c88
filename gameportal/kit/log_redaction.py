"""Secrets in URLs kept out of the log lines other libraries write.

gameportal's own access log names route templates, never a query; but uvicorn's access
log (`uvicorn ... --access-log`, on by default when uvicorn is started directly) writes
each request line whole, and a few URLs carry a secret in their query: a stream ticket
(`?ticket=`) and the links mailed to players (`?token=`). The filter below, installed on
uvicorn's loggers by configure_logging, blanks their values in every line those loggers
write."""

from __future__ import annotations

import logging
import re
from typing import Final

# `ticket=` and `token=` as query parameters (after `?` or `&`), in any case, percent-
# encoded names included (`%74icket` is unlikely, but a lower-cased `TICKET` is not).
SECRET_QUERY: Final = re.compile(r"([?&](?:ticket|token)=)[^&#\s\"']*", re.IGNORECASE)
REDACTED: Final = "[redacted]"

# The loggers that may write a request's URL: uvicorn's access log, and its error log
# (a message about a malformed request may quote the line).
URL_LOGGERS: Final = ("uvicorn.access", "uvicorn.error")


def redact_query_secrets(text: str) -> str:
    if "=" not in text:
        return text
    return SECRET_QUERY.sub(r"\1" + REDACTED, text)


def _scrubbed(value: object) -> object:
    return redact_query_secrets(value) if isinstance(value, str) else value


class QuerySecretFilter(logging.Filter):
    """Rewrites a record's message and its arguments; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_query_secrets(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrubbed(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _scrubbed(arg) for key, arg in record.args.items()}
        return True


def install_query_secret_filter() -> None:
    """Idempotent: once per logger, however often logging is configured. uvicorn's own
    logging setup (dictConfig) adds handlers but keeps a logger's filters."""
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuerySecretFilter) for f in logger.filters):
            logger.addFilter(QuerySecretFilter())
