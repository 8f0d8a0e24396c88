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
from urllib.parse import unquote_plus

# `ticket=` and `token=` as query parameters (after `?` or `&`), in any case, percent-
# encoded names included: the app reads `?%74icket=` as `ticket` (names are decoded like
# values), so the log must not show it either. Names are matched as written, then decoded.
SECRET_NAMES: Final = frozenset({"ticket", "token"})
QUERY_PARAMETER: Final = re.compile(r"([?&])([^=&#\s\"']*)(=)[^&#\s\"']*")
REDACTED: Final = "[redacted]"


def _blank_secret(match: re.Match[str]) -> str:
    if unquote_plus(match.group(2)).strip().lower() not in SECRET_NAMES:
        return match.group(0)
    return match.group(1) + match.group(2) + match.group(3) + REDACTED


# The loggers that may write a request's URL: uvicorn's access log, and its error log
# (a message about a malformed request may quote the line).
URL_LOGGERS: Final = ("uvicorn.access", "uvicorn.error")


def redact_query_secrets(text: str) -> str:
    if "=" not in text:
        return text
    return QUERY_PARAMETER.sub(_blank_secret, text)


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
