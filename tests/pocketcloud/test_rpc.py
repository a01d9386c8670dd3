from __future__ import annotations

from pocketcloud.rpc import ERROR_MODULES, make_client
from steward.config import load_settings, set_settings
from steward.rpc import get_transport


def test_clients_re_raise_the_transports_allowed_modules_and_pocketclouds() -> None:
    set_settings(load_settings(overrides={"allowed_remote_exmods": "process.errors"}))  # unread
    transport = get_transport(
        "memory://", settings=load_settings(overrides={"allowed_remote_exmods": "own.errors"})
    )
    client = make_client(transport, "compute", "1.0")
    assert client.allowed_remote_exmods == ("own.errors", *ERROR_MODULES)
