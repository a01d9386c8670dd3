from __future__ import annotations

import logging
import string
import sys
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steward.redact import (
    MASK,
    SHOWN_PREFIX,
    MaskingFormatter,
    mask_detail,
    mask_text,
    mask_url,
    shorten,
)


def test_shorten_keeps_a_short_string_as_it_is() -> None:
    assert shorten("reboot_instance") == "reboot_instance"


def test_shorten_cuts_a_long_string_to_a_prefix_and_its_length() -> None:
    assert shorten("x" * 5000, limit=8) == "xxxxxxxx… (5000 characters)"


@given(st.text(max_size=5000), st.integers(min_value=1, max_value=200))
def test_shorten_is_bounded_by_its_limit_and_keeps_the_prefix(value: str, limit: int) -> None:
    shown = shorten(value, limit)
    assert len(shown) <= limit + len(f"… ({len(value)} characters)")
    assert shown.startswith(value[:limit])
    assert (shown == value) == (len(value) <= limit)


def test_the_default_limit_is_short() -> None:
    assert len(shorten("m" * 10 * 1024 * 1024)) < SHOWN_PREFIX + 32


# --- mask_url --------------------------------------------------------------------------------

SCHEMES = ["amqp", "amqps", "rabbit", "nats", "postgresql", "postgresql+asyncpg", "redis", "https"]
# What a password may hold unencoded: RFC 3986's userinfo characters but ",", plus the "@ : /"
# people type anyway; "%XX" escapes are drawn separately.
PASSWORD_CHARACTERS = string.ascii_letters + string.digits + "-._~!$&'()*+;=:@/%"
# A token has no ":" (one would make it user:password, as every client reads it).
TOKEN_CHARACTERS = PASSWORD_CHARACTERS.replace(":", "")
# An unquoted libpq value runs to the next space; a quoted one to the next unescaped quote.
DSN_CHARACTERS = string.ascii_letters + string.digits + "-._~!$()*+=:@/%?#"
# A query value runs to the next & or ;.
QUERY_CHARACTERS = string.ascii_letters + string.digits + "-._~!$'()*+=:@/%?"


def secrets_of(characters: str) -> st.SearchStrategy[str]:
    """Secrets of 1-24 characters, %XX escapes, and URL look-alikes ("s://") where ":" may be."""
    pieces = [st.sampled_from(characters), st.integers(0, 255).map(lambda byte: f"%{byte:02X}")]
    if ":" in characters:
        pieces.append(st.sampled_from(["s://", "amqp://x@"]))
    return st.lists(st.one_of(pieces), min_size=1, max_size=24).map("".join)


hostnames = st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z][a-z0-9-]{0,8}){0,2}", fullmatch=True)
hosts = st.one_of(
    hostnames,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
)
ports = st.one_of(st.just(""), st.integers(1, 65535).map(lambda port: f":{port}"))
users = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)
paths = st.sampled_from(["", "/", "/vhost", "/%2F", "/steward?sslmode=require"])
secret_parameters = st.sampled_from(
    ["password", "PASSWORD", "passwd", "token", "auth_token", "secret", "api_key", "sslpassword"]
)


Shape = tuple[typing.Callable[[str], str], list[str], str]


@st.composite
def url_shapes(draw: st.DrawFn) -> Shape:
    """A URL with a hole for its secret, the hosts it names, and what the secret may hold."""
    scheme = draw(st.sampled_from(SCHEMES))
    servers = draw(st.lists(st.tuples(hosts, ports), min_size=1, max_size=3))
    names = [host for host, _ in servers]
    shape = draw(st.sampled_from(["password", "token", "query", "message", "dsn"]))
    user = draw(users)
    path = draw(paths)
    if shape == "dsn":  # libpq: a value is quoted ('' inside escaped) or runs to a space
        quoted = draw(st.booleans())
        dsn = f"host={names[0]} user={user} password={{}} dbname=steward"
        characters = DSN_CHARACTERS + (" " if quoted else "")
        return (lambda s: dsn.format(f"'{s}'" if quoted else s)), names[:1], characters
    if shape == "query":
        name = draw(secret_parameters)
        netloc = ",".join(f"{host}{port}" for host, port in servers)
        return (
            (lambda s: f"{scheme}://{netloc}/db?sslmode=require&{name}={s}"),
            names,
            QUERY_CHARACTERS,
        )
    token = shape == "token"

    def credentials(secret: str) -> str:
        return secret if token else f"{user}:{secret}"

    listed = draw(st.booleans())

    def build(secret: str) -> str:
        if listed:  # nats-py's "url,url" list, each URL with its credentials
            return ",".join(f"{scheme}://{credentials(secret)}@{h}{p}" for h, p in servers) + path
        # oslo's "scheme://cred@h1,cred@h2/vhost"
        return f"{scheme}://" + ",".join(f"{credentials(secret)}@{h}{p}" for h, p in servers) + path

    characters = TOKEN_CHARACTERS if token else PASSWORD_CHARACTERS
    if shape == "message":
        return (lambda s: f"cannot connect to '{build(s)}': refused"), names, characters
    return build, names, characters


@settings(max_examples=500)
@given(url_shapes(), st.data())
def test_mask_url_never_shows_a_secret_and_keeps_the_hosts(
    shape: Shape, data: st.DataObject
) -> None:
    build, names, characters = shape
    secret, other = data.draw(secrets_of(characters)), data.draw(secrets_of(characters))
    masked = mask_url(build(secret))
    # The output is the same whatever the secret: nothing of its value gets through...
    assert masked == mask_url(build(other))
    # ...so the secret shows only where it is also a piece of the URL's shape (a host, a user).
    if secret not in build("") and MASK[0] not in secret:
        assert secret not in masked
        if not any(character.isspace() for character in secret):  # a text's URL ends at a space
            assert secret not in mask_text(build(secret))
    for host in names:
        assert host in masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        pytest.param(
            "amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/", id="amqp"
        ),
        pytest.param("nats://s3cr3t@127.0.0.1:4222", "nats://***@127.0.0.1:4222", id="nats-token"),
        pytest.param(
            "nats://s3cr3t@h1:4222,nats://s3cr3t@h2:4222",
            "nats://***@h1:4222,nats://***@h2:4222",
            id="nats-url-list",
        ),
        pytest.param(
            "amqp://u:p@h1,u:p@h2/vhost", "amqp://u:***@h1,u:***@h2/vhost", id="oslo-hosts"
        ),
        pytest.param("amqp://u:p@ss@h:5672/", "amqp://u:***@h:5672/", id="at-in-password"),
        pytest.param("amqp://u:a/b:c@h/v", "amqp://u:***@h/v", id="slash-colon-in-password"),
        pytest.param("amqp://u:p%40ss@[::1]:5672/", "amqp://u:***@[::1]:5672/", id="ipv6"),
        pytest.param(
            "postgresql://db/x?sslmode=require&password=pw&auth_token=t;api_key=k",
            "postgresql://db/x?sslmode=require&password=***&auth_token=***;api_key=***",
            id="query-secrets",
        ),
        pytest.param(
            "postgresql://db/x?email=a@b&password=p@w",
            "postgresql://db/x?email=a@b&password=***",
            id="at-in-query-values",
        ),
        pytest.param(
            "host=db user=me password='se cret' dbname=x",
            "host=db user=me password=*** dbname=x",
            id="libpq-dsn",
        ),
        pytest.param(
            "host=db password=ab://cd@ef dbname=x",
            "host=db password=*** dbname=x",
            id="libpq-password-that-looks-like-a-url",
        ),
        pytest.param(
            "host=db password='ab://c d' dbname=x",
            "host=db password=*** dbname=x",
            id="libpq-quoted-password-that-looks-like-a-url",
        ),
        pytest.param(
            "cannot connect to 'amqp://u:pw@h/': refused (routing_key=x)",
            "cannot connect to 'amqp://u:***@h/': refused (routing_key=x)",
            id="in-a-message",
        ),
        pytest.param("memory://", "memory://", id="no-credentials"),
        pytest.param(
            "sqlite+aiosqlite:///./steward.db", "sqlite+aiosqlite:///./steward.db", id="path"
        ),
    ],
)
def test_mask_url_keeps_scheme_hosts_path_and_user_only(text: str, masked: str) -> None:
    assert mask_url(text) == masked
    assert mask_text(text) == masked


def test_mask_detail_keeps_a_parsers_error_free_of_password_pieces() -> None:
    # urlsplit cuts "u:pa/ss@h" at the "/": the port it cannot read is a piece of the password.
    detail = "Port could not be cast to integer value as 'pa'"
    shown = mask_detail(detail, "amqp://u:pa/ss@h/")
    assert "pa'" not in shown
    assert "percent-encoded" in shown
    assert (
        mask_detail("server 'tok3n@' has no host", "nats://tok3n@") == "server '***@' has no host"
    )


def test_masking_formatter_masks_messages_and_tracebacks() -> None:
    formatter = MaskingFormatter("%(message)s")

    def fail() -> None:
        raise ValueError("cannot parse 'nats://t0ken@h:4222'")

    try:
        fail()
    except ValueError:
        record = logging.LogRecord(
            "steward", logging.ERROR, __file__, 1, "on %s", ("amqp://u:hunter2@h/",), sys.exc_info()
        )
    shown = formatter.format(record)
    assert "hunter2" not in shown
    assert "t0ken" not in shown
    assert "on amqp://u:***@h/" in shown
    assert "nats://***@h:4222" in shown


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('connecting with password="abc def" host=db', "abc def"),
        ("connecting to amqp://guest:pw\xa0x@rabbit:5672/ now", "pw\xa0x"),
        ("dsn: host=db password='s3x q7z' user=x", "s3x q7z"),
    ],
    ids=["double-quoted", "non-breaking-space", "single-quoted"],
)
def test_mask_text_masks_quoted_values_and_passwords_with_unicode_spaces(
    text: str, secret: str
) -> None:
    masked = mask_text(text)
    assert not any(part in masked for part in secret.split()), masked
    assert "***" in masked
