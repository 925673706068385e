"""Secrets out of text meant for people: logs, error messages, run metadata.

libpq echoes a connection string it cannot parse, password included, in its error message;
anything that shows such an error redacts it first.
"""

from __future__ import annotations

import re

REDACTED = "***"

# scheme://user:password@host (also a mistyped scheme without its colon) and key=value secrets.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][\w+.-]*:?//[^\s:/@]*:)[^\s@]+(?=@)")
_KEY_VALUE = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|api[_-]?key|secret[_-]?access[_-]?key|token)\s*[=:]\s*)"
    r"(?:'[^']*'|\"[^\"]*\"|[^\s'\",;&]+)",
    re.IGNORECASE,
)


def redact(text: str, *urls: str) -> str:
    """``text`` with URL passwords and ``password=``-style values replaced by ``***``.

    ``urls`` are connection strings the text may quote: each is shown redacted, or hidden
    whole when it holds credentials in a form the patterns do not recognize.
    """
    for url in urls:
        if url:
            text = text.replace(url, _redacted_url(url))
    return _redacted(text)


def _redacted(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: m["head"] + REDACTED, text)
    return _KEY_VALUE.sub(lambda m: m["head"] + REDACTED, text)


def _redacted_url(url: str) -> str:
    shown = _redacted(url)
    return shown if shown != url or "@" not in url else REDACTED
