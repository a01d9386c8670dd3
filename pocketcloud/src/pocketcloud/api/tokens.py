"""Tokens: who a request's ``X-Auth-Token`` says it comes from, read from the operator's file.

The ``api_token_file`` setting names a TOML file with one ``[[token]]`` table per token::

    [[token]]
    token = "a long random string"     # at least 16 characters
    user = "alice"
    project = "web"
    admin = false                      # optional; an admin sees every project and the services

A request sends its token as OpenStack clients do, in ``X-Auth-Token``. The API looks it up in
constant time (a SHA-256 digest of every token is compared with :func:`hmac.compare_digest`, all
of them every time), so how long an answer takes says nothing of how close a guess was; the
tokens themselves are kept only as digests and never reach a log line or an error message.
Without the setting the API is open: every request is an admin's, on 127.0.0.1 only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import stat
import tomllib
import typing
from pathlib import Path

import pydantic

from pocketcloud.api.schemas import Name
from steward import ConfigError

__all__ = ["AUTH_HEADER", "MIN_TOKEN_LENGTH", "Identity", "Tokens", "load_tokens"]

LOG = logging.getLogger(__name__)

AUTH_HEADER = "X-Auth-Token"
"""The request header that carries the token (OpenStack's)."""
MIN_TOKEN_LENGTH = 16
"""The shortest token the file may hold: a guessable one is refused at start."""


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """Who a token stands for: a user, the project it acts in, and whether it is an admin."""

    user: str
    project: str
    admin: bool = False


class _Entry(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True, extra="forbid", frozen=True)

    token: pydantic.SecretStr
    user: Name
    project: Name
    admin: bool = False


class _File(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True, extra="forbid", frozen=True)

    token: list[_Entry] = pydantic.Field(min_length=1)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    """The known tokens, as digests, each with its :class:`Identity`."""

    def __init__(self, identities: typing.Mapping[str, Identity]) -> None:
        if not identities:
            raise ValueError("`identities` must hold at least one token")
        self._identities = [(_digest(token), who) for token, who in identities.items()]

    def __len__(self) -> int:
        return len(self._identities)

    def identify(self, presented: str | None) -> Identity | None:
        """Return the identity of ``presented``, or None when it is missing or unknown."""
        if not presented:
            return None
        digest = _digest(presented)
        found: Identity | None = None
        for known, identity in self._identities:
            # Every digest is compared, whatever matched: the time taken is the same.
            if hmac.compare_digest(digest, known):
                found = identity
        return found


def _file_error(path: Path, problems: list[str]) -> ConfigError:
    return ConfigError(
        f"`api_token_file` {str(path)!r}: " + "; ".join(problems) + " (expected [[token]] "
        f"tables, each with `token` ({MIN_TOKEN_LENGTH} characters at least), `user`, `project` "
        "and an optional `admin`)"
    )


def load_tokens(path: Path) -> Tokens:
    """Read the token file at ``path``; raises :class:`steward.ConfigError` saying what is wrong.

    The error names the file, the entry and the field, never a token's value. A file that other
    users may read is loaded, with a warning.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"`api_token_file`: cannot read {str(path)!r}: {exc.strerror}; give the path of a "
            "TOML file of [[token]] tables"
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"`api_token_file` {str(path)!r} is not valid TOML: {exc}") from exc
    try:
        parsed = _File.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [
            f"`{'.'.join(str(part) for part in error['loc']) or 'the file'}`: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        # Not chained: pydantic's own message shows the input, a token perhaps.
        raise _file_error(path, problems) from None
    short = [
        f"`token.{number}.token` must have {MIN_TOKEN_LENGTH} characters at least, "
        f"got {len(entry.token.get_secret_value())}"
        for number, entry in enumerate(parsed.token)
        if len(entry.token.get_secret_value()) < MIN_TOKEN_LENGTH
    ]
    if short:
        raise _file_error(path, short)
    if mode & 0o077:
        LOG.warning(
            "The API's token file %r may be read by other users (mode %#o); `chmod 600` it",
            str(path),
            mode,
        )
    identities: dict[str, Identity] = {}
    for number, entry in enumerate(parsed.token):
        secret = entry.token.get_secret_value()
        if secret in identities:
            raise ConfigError(
                f"`api_token_file` {str(path)!r}: `token.{number}` repeats the token of an "
                "earlier entry; give each user a token of its own"
            )
        identities[secret] = Identity(user=entry.user, project=entry.project, admin=entry.admin)
    return Tokens(identities)
