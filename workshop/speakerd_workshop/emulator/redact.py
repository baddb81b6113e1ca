"""Secrets never reach a log, the emulator's included: API keys and ephemeral tokens are cut out of
every record before any handler formats it.

Why a filter on the handlers and not care at each call site: with ``-v`` the websockets library
logs request lines (``?key=``) and headers (``x-goog-api-key``, ``Authorization``) itself.
"""

from __future__ import annotations

import logging
import re

REDACTED = "<redacted>"

_PATTERNS = (
    # ?key=... and ?access_token=... in a request target or URL
    re.compile(r"(?i)([?&](?:key|access_token)=)[^&\s'\"\]]+"),
    # header lines and dict reprs: x-goog-api-key: K, Authorization: Token T, 'x-goog-api-key': 'K'
    re.compile(r"(?i)((?:x-goog-api-key|authorization)['\"]?\s*[:=]\s*['\"]?)[^\r\n'\",}]+"),
    # ephemeral token names wherever they appear
    re.compile(r"(auth_tokens/)[A-Za-z0-9_.~-]+"),
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every credential replaced by ``<redacted>``."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (arguments merged in) with :func:`redact`."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_text is None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
        return True


LOGGERS = ("speakerd_workshop.emulator", "websockets.server", "websockets")


def protect(*secrets: str) -> None:
    """Put a :class:`RedactingFilter` on the loggers the emulator's records come from, so every
    handler (a CLI's, pytest's, a daemon's) gets them clean."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        mine = [f for f in logger.filters if isinstance(f, RedactingFilter)]
        if mine:
            mine[0].secrets = tuple(dict.fromkeys(mine[0].secrets + tuple(s for s in secrets if s)))
        else:
            logger.addFilter(RedactingFilter(*secrets))


def install(*secrets: str) -> None:
    """Put a :class:`RedactingFilter` on every handler of the root logger."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(*secrets))
