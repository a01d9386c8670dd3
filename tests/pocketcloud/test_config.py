from __future__ import annotations

from pathlib import Path

import pytest

from pocketcloud.config import FILTER_NAMES, load_cloud_settings
from steward import ConfigError


def test_defaults_describe_a_small_flat_cloud_on_loopback() -> None:
    settings = load_cloud_settings()
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8774)
    assert settings.network_manager == "flat"
    assert settings.scheduler_enabled_filters == list(FILTER_NAMES)
    assert settings.data_dir == Path("pocketcloud-data")
    assert settings.database_url.endswith("/pocketcloud-data/pocketcloud.db")
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::"])  # noqa: S104 - refused
def test_the_api_refuses_to_listen_beyond_loopback(host: str) -> None:
    with pytest.raises(ConfigError, match="loopback address only"):
        load_cloud_settings({"api_host": host})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_are_accepted(host: str) -> None:
    assert load_cloud_settings({"api_host": host}).api_host == host


def test_the_environment_sets_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POCKETCLOUD_NETWORK_MANAGER", "vlan")
    monkeypatch.setenv("POCKETCLOUD_SCHEDULER_ENABLED_FILTERS", "RamFilter, ComputeFilter")
    settings = load_cloud_settings()
    assert settings.network_manager == "vlan"
    assert settings.scheduler_enabled_filters == ["RamFilter", "ComputeFilter"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"network_manager": "mesh"}, "option `network_manager`"),
        ({"scheduler_enabled_filters": "MagicFilter"}, "unknown filters"),
        ({"api_port": 70000}, "option `api_port`"),
        ({"no_such_option": 1}, "option `no_such_option`"),
    ],
)
def test_bad_settings_are_a_config_error_naming_the_option(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_cloud_settings(overrides)


def test_with_a_token_file_the_api_may_listen_beyond_loopback(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    settings = load_cloud_settings({"api_host": "0.0.0.0", "api_token_file": tokens})  # noqa: S104
    assert settings.api_host == "0.0.0.0"  # noqa: S104
    with pytest.raises(ConfigError, match="set api_token_file to serve beyond this machine"):
        load_cloud_settings({"api_host": "0.0.0.0"})  # noqa: S104
