"""steward's transports run the shipped conformance suite (:mod:`steward.testing.conformance`).

Each check runs once per transport URL in ``URLS``; a new transport is added to steward by adding
its URL here, never by changing a check. ``memory://`` lives in the event loop, so its checks run
on a virtual loop clock (looptime): the calls that wait for their timeout take no real time.
"""

from __future__ import annotations

import os

import pytest

from steward.config import Settings
from steward.rpc import get_transport
from steward.rpc.transports.base import Transport
from steward.testing.conformance import TransportConformance, TransportFactory

URLS = [
    pytest.param("memory://", id="memory", marks=pytest.mark.looptime),
    # The machine's RabbitMQ, in this test session's own vhost (see tests/conftest.py).
    pytest.param(os.environ["RABBIT_TEST_URL"], id="rabbit"),
    # The machine's NATS with JetStream, in this test session's own namespace (tests/conftest.py).
    pytest.param(os.environ["NATS_TEST_URL"], id="nats"),
]


class TestConformance(TransportConformance):
    @pytest.fixture(params=URLS)
    def transport_factory(self, request: pytest.FixtureRequest) -> TransportFactory:
        url = str(request.param)
        if url.startswith("amqp"):
            request.getfixturevalue("rabbit_url")  # its vhost exists

        def make(*, settings: Settings | None = None) -> Transport:
            return get_transport(url, settings=settings)

        return make
