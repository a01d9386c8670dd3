"""What may be shown of a value that came from outside: untrusted strings cut short.

A method name, a topic, a resource id or a URL in a message is chosen by whoever sent it. Every
place that shows such a string — a log line, a span attribute, a metric label, a report, an error
message sent back to a caller — shows :func:`shorten`'s result instead, so a 10 MiB name costs a
few dozen bytes there, not 10 MiB per line (or per scrape).
"""

from __future__ import annotations

__all__ = ["SHOWN_PREFIX", "shorten"]

SHOWN_PREFIX = 80
"""How many characters of an untrusted string are shown by default."""


def shorten(value: str, limit: int = SHOWN_PREFIX) -> str:
    """Return ``value`` itself if it has at most ``limit`` characters, else a prefix and its length.

    >>> shorten("reboot")
    'reboot'
    >>> shorten("x" * 5000, limit=8)
    'xxxxxxxx… (5000 characters)'

    The result is still a ``str``, so call sites keep formatting it with ``%r`` (which escapes
    the newlines and control characters a hostile string may carry).
    """
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value)} characters)"
