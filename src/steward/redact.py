"""What may be shown of a value: untrusted strings cut short, secrets in URLs masked.

A method name, a topic, a resource id or a URL in a message is chosen by whoever sent it. Every
place that shows such a string — a log line, a span attribute, a metric label, a report, an error
message sent back to a caller — shows :func:`shorten`'s result instead, so a 10 MiB name costs a
few dozen bytes there, not 10 MiB per line (or per scrape).

A transport or database URL carries credentials. Every place that shows one — ``steward config
show``, the service report, a log line, an error message, the ``repr`` of a transport, connection
or database — shows :func:`mask_url`'s result instead (``steward.config.mask_url`` is the same
function).
"""

from __future__ import annotations

import logging
import re
import typing

__all__ = [
    "MASK",
    "SHOWN_PREFIX",
    "MaskingFormatter",
    "mask_detail",
    "mask_text",
    "mask_url",
    "shorten",
]

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


MASK = "***"
"""What replaces a secret wherever one is shown."""

# A URL's scheme. In a text a URL runs from it to the next whitespace (its hosts may be a "url,url"
# list); a value given as one URL runs to its end, spaces included.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# Names of query parameters whose values are secrets (?password=, ?auth_token=, ?api_key=...).
_SECRET_PARAMETER = r"[^=&;#?\s]*(?:pass|pwd|secret|token|auth|key|cred)[^=&;#?\s]*"  # noqa: S105
# name=value in a query string; the value runs to the next & or ; as query parsers read it (or
# to a space, in a text).
_SECRET_QUERY = re.compile(rf"(?P<name>[?&;]{_SECRET_PARAMETER})=[^&;]*", re.IGNORECASE)
_SECRET_QUERY_IN_TEXT = re.compile(rf"(?P<name>[?&;]{_SECRET_PARAMETER})=[^&;\s]*", re.IGNORECASE)
# name=value or name = 'quoted value' outside URLs: libpq's "host=db password=x" DSNs. Narrower
# than in a query, so that a log line's "routing_key=..." stays readable.
_KEYWORD_NAME = r"(?<![\w.-])[\w.-]*(?:pass|pwd|secret|token)[\w.-]*"
_SECRET_KEYWORD = re.compile(
    rf"(?P<name>{_KEYWORD_NAME})\s*=\s*"
    r"""(?:'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^\s,;&]*)""",
    re.IGNORECASE,
)
_KEYWORD_WORD = re.compile("pass|pwd|secret|token", re.IGNORECASE)
# A URL in a text ends at ASCII whitespace only: a non-breaking space (which \s matches) inside
# a password must not end the URL before its "@", leaving the password unmasked.
_SPACE = re.compile(r"[ \t\r\n\f\v]")


def mask_url(url: str) -> str:
    """Return ``url`` (a URL, a list of URLs or a DSN) with its secrets replaced by ``***``.

    >>> mask_url("amqp://guest:guest@127.0.0.1:5672/")
    'amqp://guest:***@127.0.0.1:5672/'
    >>> mask_url("nats://s3cr3t@h1:4222,nats://s3cr3t@h2:4222")
    'nats://***@h1:4222,nats://***@h2:4222'

    What is kept: the scheme, each host and port, the path and the query's other parameters, and
    the user name of a ``user:password@``. What is replaced: the password of a ``user:password@``
    (everything after the first ``:`` of the userinfo), a whole userinfo without ``:`` (a NATS or
    Redis ``token@``: nothing of it is shown), the value of every query parameter whose name
    contains ``pass``, ``pwd``, ``secret``, ``token``, ``auth``, ``key`` or ``cred``
    (``?password=``, ``?auth_token=``, ``?sslkey=``), and outside URLs the value of every
    ``name=value`` whose name contains ``pass``, ``pwd``, ``secret`` or ``token`` (libpq's
    ``host=db password='...'``).

    The userinfo ends at the URL's last ``@`` that is not inside a query value, so a password may
    hold ``@``, ``:``, ``/`` and ``%``, encoded or not. A ``,`` between hosts starts the next host
    (``amqp://u:p@h1,u:p@h2/``), as the transports read it; ``,``, ``?``, ``#`` and spaces inside a
    password must be percent-encoded (as RFC 3986 and every URL parser require). Everything from
    the first ``scheme://`` on is one URL, spaces included; :func:`mask_text` finds URLs in a text.
    """
    return _mask(url, [], in_text=False)


def mask_text(text: str) -> str:
    """Return ``text`` (a message, a log line, a report) with the secrets of its URLs masked.

    As :func:`mask_url` does for each URL in ``text`` (a URL ends at a space here, so a password
    holding a space is masked only up to it: show such a URL with :func:`mask_url`), and for each
    ``name=value`` outside URLs whose name holds ``pass``, ``pwd``, ``secret`` or ``token``.
    """
    return _mask(text, [], in_text=True)


def mask_detail(detail: str, url: str) -> str:
    """Return ``detail`` (a parser's error about ``url``) with ``url``'s secrets kept out of it.

    A parser that fails on a URL quotes a piece of it (``Port could not be cast to integer value
    as 'pa'``): when a password holds a character that cuts URLs (``/ ? # @ , [ ]`` or a space),
    that piece may be part of the password, so the detail becomes advice instead; otherwise each
    whole secret in it is masked, and so is any URL.
    """
    secrets: list[str] = []
    _mask(url, secrets, in_text=False)
    if any(re.search(r"[/?#@,\[\]\s]", secret) for secret in secrets):
        return (
            "it does not parse; a password holding / ? # @ , [ ] or a space must have them "
            "percent-encoded (%2F %3F %23 %40 %2C %5B %5D %20)"
        )
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        detail = detail.replace(secret, MASK)
    return mask_text(detail)


class MaskingFormatter(logging.Formatter):
    """A log formatter whose output, traceback included, has the secrets of URLs masked.

    The last guard: a URL that reaches a log line through a library's exception message is
    masked here even though no steward code formatted it.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as :class:`logging.Formatter` does, then :func:`mask_text` it."""
        return mask_text(super().format(record))


def _mask(text: str, secrets: list[str], *, in_text: bool) -> str:
    """:func:`mask_text` (or :func:`mask_url`), appending each secret it replaces to ``secrets``."""

    def keyword(match: re.Match[str]) -> str:
        secrets.append(match[0][len(match["name"]) :].lstrip(" \t=").strip("'\""))
        return f"{match['name']}={MASK}"

    if "=" not in text and "://" not in text:
        return text  # most log lines: nothing to mask, and this is the cheap way to know it
    keywords = _KEYWORD_WORD.search(text) is not None
    urls = "://" in text
    pieces = []
    shown = 0
    query = _SECRET_QUERY_IN_TEXT if in_text else _SECRET_QUERY
    # Left to right, whichever comes first: a keyword's value is masked whole (a "://" in it is
    # not a URL), a URL is masked as one (a "password=" in it is its own business).
    while True:
        secret = _SECRET_KEYWORD.search(text, shown) if keywords else None
        url = _SCHEME.search(text, shown) if urls else None
        if url is not None and (secret is None or url.start() < secret.start()):
            space = _SPACE.search(text, url.start()) if in_text else None
            end = space.start() if space is not None else len(text)
            pieces += [
                text[shown : url.start()],
                _mask_one_url(text[url.start() : end], keyword, query, secrets),
            ]
            shown = end
        elif secret is not None:
            pieces += [text[shown : secret.start()], keyword(secret)]
            shown = secret.end()
        else:
            pieces.append(text[shown:])
            return "".join(pieces)


def _mask_one_url(
    url: str,
    keyword: typing.Callable[[re.Match[str]], str],
    query: re.Pattern[str],
    secrets: list[str],
) -> str:
    scheme, _, rest = url.partition("://")
    at = _userinfo_end(rest)
    if at < 0:
        userinfo, tail = "", rest
    else:
        userinfo, tail = _mask_userinfo(rest[:at], secrets) + "@", rest[at + 1 :]
    tail = query.sub(keyword, tail)
    return f"{scheme}://{userinfo}{tail}"


def _userinfo_end(rest: str) -> int:
    """Index of the ``@`` that ends the userinfo of ``rest`` (after ``://``), or -1."""
    end = -1
    query = rest.find("?")
    for match in re.finditer("@", rest):
        if 0 <= query < match.start():
            parameter = re.split("[&;]", rest[query + 1 : match.start()])[-1]
            if "=" in parameter:  # an @ inside a query value (?email=a@b) ends no userinfo
                continue
        end = match.start()
    return end


def _mask_userinfo(region: str, secrets: list[str]) -> str:
    """Mask ``ui1@h1,ui2@h2,...,uiN`` (the last host follows the region)."""
    parts = region.split(",")
    masked = []
    for part in parts[:-1]:
        userinfo, at, host = part.rpartition("@")
        masked.append(f"{_mask_credentials(userinfo, secrets)}@{host}" if at else part)
    masked.append(_mask_credentials(parts[-1], secrets))
    return ",".join(masked)


def _mask_credentials(userinfo: str, secrets: list[str]) -> str:
    """``user:password`` -> ``user:***``; a ``token`` (no colon) -> ``***``."""
    scheme = _SCHEME.match(userinfo)  # "nats://tok" in nats-py's "url,url" list
    prefix = scheme[0] if scheme is not None else ""
    user, colon, password = userinfo[len(prefix) :].partition(":")
    secrets.append(password if colon else user)
    return f"{prefix}{user}:{MASK}" if colon else f"{prefix}{MASK}"
