"""What transports show of their URL: logs, ``repr`` and errors never carry its secrets.

The fuzz part generates transport URLs of every shape — tokens, passwords holding ``@ : / %``,
several hosts, IPv6, query secrets, and malformed ones — and feeds them to :func:`get_transport`:
each either gives a transport or raises :class:`InvalidTransportURL`, and neither shows the secret.
"""

from __future__ import annotations

import logging
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steward.config import load_settings
from steward.errors import InvalidTransportURL, MessageUndeliverable
from steward.rpc import RPCServer, Target, get_transport

# Anything but ", ? #", which must be percent-encoded in a password (a "," starts the next host).
SECRET_CHARACTERS = string.ascii_letters + string.digits + "-._~!$&'()*+;=:@/%[] "


async def test_rpc_server_consuming_line_masks_a_token(caplog: pytest.LogCaptureFixture) -> None:
    transport = get_transport("memory://t0kenvalue@bus-urls")
    server = RPCServer(transport, Target("urls", "h1"), [object()])
    with caplog.at_level(logging.INFO, logger="steward.rpc.server"):
        await server.start()
        try:
            (line,) = [r.getMessage() for r in caplog.records if "consuming" in r.getMessage()]
        finally:
            await server.stop()
            await transport.close()
    assert "t0kenvalue" not in line
    assert line.endswith("on memory://***@bus-urls")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("memory://t0kenvalue@bus", "memory://***@bus", id="memory"),
        pytest.param(
            "amqp://u:t0ken@value@127.0.0.1:5672,u:t0ken@value@[::1]:5672/v",
            "amqp://u:***@127.0.0.1:5672,u:***@[::1]:5672/v",
            id="rabbit",
        ),
        pytest.param(
            "nats://t0kenvalue@127.0.0.1:4222,t0kenvalue@127.0.0.2:4222/ns",
            "nats://***@127.0.0.1:4222,***@127.0.0.2:4222/ns",
            id="nats",
        ),
    ],
)
async def test_transport_url_and_repr_mask_every_secret(url: str, shown: str) -> None:
    transport = get_transport(url)
    try:
        assert transport.url == shown
        for text in (repr(transport), repr(getattr(transport, "connection", None)),
                     repr(getattr(transport, "connector", None))):  # fmt: skip
            assert "t0ken" not in text
    finally:
        await transport.close()


def test_a_url_that_does_not_parse_is_refused_without_its_password() -> None:
    # urlsplit cuts the netloc at the "/" in the password: "pa" would be read as a port.
    with pytest.raises(InvalidTransportURL) as caught:
        get_transport("amqp://u:pa/ssw0rd@127.0.0.1/")
    assert "ssw0rd" not in str(caught.value)
    assert "'pa'" not in str(caught.value)
    assert "percent-encoded" in str(caught.value)


hosts = st.sampled_from(["127.0.0.1", "[::1]", "rabbit.example", "h", ""])
ports = st.sampled_from(["", ":5672", ":4222", ":0", ":x", ":99999"])
secrets = st.text(SECRET_CHARACTERS, min_size=4, max_size=20).map(lambda text: f"S3cr{text}")


@st.composite
def transport_urls(draw: st.DrawFn) -> tuple[str, str]:
    """A transport URL (well-formed or not) and the secret in it."""
    secret = draw(secrets)
    scheme = draw(st.sampled_from(["amqp", "amqps", "rabbit", "nats", "memory", "bogus"]))
    servers = draw(st.lists(st.tuples(hosts, ports), min_size=1, max_size=3))
    form = draw(st.sampled_from(["user", "token", "query"]))
    if form == "token":  # a ":" makes it user:password, the user shown (as clients read it)
        secret = secret.replace(":", "")
    credentials = {"user": f"me:{secret}@", "token": f"{secret}@", "query": ""}[form]
    netloc = ",".join(f"{credentials}{host}{port}" for host, port in servers)
    path = draw(st.sampled_from(["", "/", "/vhost", "/ns?jetstream=true"]))
    url = f"{scheme}://{netloc}{path}"
    if form == "query":
        url += ("&" if "?" in url else "?") + f"password={secret.replace('&', '')}"
        secret = secret.replace("&", "")
    return url, secret


@settings(max_examples=300, deadline=None)
@given(transport_urls())
def test_get_transport_never_shows_the_secret_of_any_url(case: tuple[str, str]) -> None:
    url, secret = case
    shown: list[str] = []
    try:
        transport = get_transport(url, settings=load_settings())
    except InvalidTransportURL as exc:
        shown.append(str(exc))
    else:
        shown += [transport.url, repr(transport)]
    for text in shown:
        assert secret not in text


async def test_an_undeliverable_request_on_memory_names_the_bus_with_its_secret_masked() -> None:
    transport = get_transport("memory://s3cr3t@lab")
    try:
        with pytest.raises(MessageUndeliverable) as raised:
            await transport.send(Target("nobody"), b"{}")
    finally:
        await transport.close()
    assert "s3cr3t" not in str(raised.value)
    assert "memory://***@lab" in str(raised.value)
