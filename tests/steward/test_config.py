from __future__ import annotations

import socket
from pathlib import Path

import pytest

from steward import config
from steward.config import NatsSettings, RabbitSettings, Settings, load_settings, mask_url
from steward.errors import ConfigError


def test_defaults_follow_the_design() -> None:
    settings = load_settings()
    assert settings.host == socket.gethostname()
    assert settings.transport_url == "memory://"
    assert settings.database_url == "sqlite+aiosqlite:///./steward.db"
    assert settings.control_exchange == "openstack"
    assert settings.rpc_response_timeout == 60
    assert settings.executor_thread_pool_size == 64
    assert settings.report_interval == 10
    assert settings.service_down_time == 60
    assert settings.periodic_interval_max == 60
    assert settings.periodic_fuzzy_delay == 60
    assert settings.graceful_shutdown_timeout == 60
    assert settings.allowed_remote_exmods == []
    assert settings.tracing_enabled is False
    assert settings.backdoor_port is None
    assert settings.metrics_port is None
    assert settings.max_message_size == 16 * 1024 * 1024
    assert all(settings.origin(name) == "default" for name in Settings.model_fields)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "steward.toml"
    path.write_text('host = "from-file"\nreport_interval = 5\nservice_down_time = 50\n')
    return path


def test_file_overrides_defaults(config_file: Path) -> None:
    settings = load_settings(config_file=config_file)
    assert settings.host == "from-file"
    assert settings.report_interval == 5
    assert settings.origin("host") == "file"
    assert settings.origin("control_exchange") == "default"


def test_environment_overrides_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_REPORT_INTERVAL", "7")
    settings = load_settings(config_file=config_file)
    assert settings.report_interval == 7
    assert settings.origin("report_interval") == "environment"
    assert settings.service_down_time == 50
    assert settings.origin("service_down_time") == "file"


def test_command_line_overrides_environment(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_REPORT_INTERVAL", "7")
    monkeypatch.setenv("STEWARD_HOST", "from-env")
    settings = load_settings(config_file=config_file, overrides={"report_interval": "8"})
    assert settings.report_interval == 8
    assert settings.origin("report_interval") == "command line"
    assert settings.host == "from-env"
    assert settings.origin("host") == "environment"


def test_environment_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("steward_control_exchange", "nova")
    assert load_settings().control_exchange == "nova"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("nova.exception, mylib.errors", ["nova.exception", "mylib.errors"], id="csv"),
        pytest.param('["nova.exception"]', ["nova.exception"], id="json"),
        pytest.param("", [], id="empty"),
    ],
)
def test_module_lists_accept_commas_or_json(
    raw: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEWARD_ALLOWED_REMOTE_EXMODS", raw)
    assert load_settings().allowed_remote_exmods == expected


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        pytest.param(
            {"report_interval": "ten"},
            ["`report_interval`", "from command line", "'ten'", "valid number"],
            id="not-a-number",
        ),
        pytest.param(
            {"report_interval": "0"},
            ["`report_interval`", "greater than 0", "'0'"],
            id="not-positive",
        ),
        pytest.param(
            {"backdoor_port": "9000:8000"},
            ["`backdoor_port`", "A <= B", "'9000:8000'"],
            id="reversed-range",
        ),
        pytest.param(
            {"backdoor_port": "console"},
            ["`backdoor_port`", "'A:B'", "'console'"],
            id="not-a-port",
        ),
        pytest.param(
            {"metrics_port": "70000"},
            ["`metrics_port`", "65535", "'70000'"],
            id="port-too-large",
        ),
        pytest.param(
            {"report_intervall": "5"},
            ["unknown option `report_intervall`", "known options:", "report_interval"],
            id="misspelt",
        ),
    ],
)
def test_bad_values_name_the_option_the_value_and_what_is_allowed(
    overrides: dict[str, str], fragments: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides=overrides)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_SERVICE_DOWN_TIME", "-3")
    with pytest.raises(ConfigError, match=r"STEWARD_SERVICE_DOWN_TIME.*'-3'"):
        load_settings()


def test_missing_and_malformed_config_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("host = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=broken)


def test_unknown_option_in_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "steward.toml"
    path.write_text("no_such_option = 1\n")
    with pytest.raises(
        ConfigError, match=r"unknown option `no_such_option` \(from file: .*steward\.toml\)"
    ):
        load_settings(config_file=path)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        pytest.param(
            "amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/", id="amqp"
        ),
        pytest.param(
            "amqp://a:p1@h1:5672,b:p2@h2:5672/vhost",
            "amqp://a:***@h1:5672,b:***@h2:5672/vhost",
            id="several-hosts",
        ),
        pytest.param(
            "postgresql+asyncpg://me:s3cr%40t@db/steward?sslmode=require&password=x",
            "postgresql+asyncpg://me:***@db/steward?sslmode=require&password=***",
            id="query-password",
        ),
        pytest.param("memory://", "memory://", id="no-credentials"),
        pytest.param("nats://s3cret@host:4222", "nats://***@host:4222", id="token-only"),
    ],
)
def test_mask_url_hides_passwords_and_tokens(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_secrets_never_appear_when_settings_are_shown() -> None:
    settings = load_settings(
        overrides={
            "transport_url": "amqp://guest:hunter2@127.0.0.1:5672/",
            "database_url": "postgresql+asyncpg://me:opensesame@127.0.0.1/test",
        }
    )
    for shown in (repr(settings), str(settings), str(settings.masked())):
        assert "hunter2" not in shown
        assert "opensesame" not in shown
        assert "guest:***@" in shown
    assert settings.transport_url == "amqp://guest:hunter2@127.0.0.1:5672/"


def test_secret_in_a_bad_value_is_masked_in_the_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"transport_url": "", "report_interval": "x"})
    assert "report_interval" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"database_url": ["sqlite://u:topsecret@h/db"]})
    assert "topsecret" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:  # a URL in an option that is not a secret one
        load_settings(overrides={"host": ["nats://t0kenvalue@h:4222"]})
    assert "t0kenvalue" not in str(caught.value)
    assert "nats://***@h:4222" in str(caught.value)


def test_mutable_options_are_marked() -> None:
    mutable = Settings.mutable_options()
    assert {"report_interval", "rpc_response_timeout", "tracing_enabled"} <= mutable
    assert {"host", "transport_url", "database_url", "executor_thread_pool_size"}.isdisjoint(
        mutable
    )
    assert Settings.secret_options() == {
        "transport_url",
        "database_url",
        "notification_transport_url",
    }


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.host = "elsewhere"


def test_get_settings_loads_once_and_set_settings_replaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEWARD_HOST", "first")
    first = config.get_settings()
    monkeypatch.setenv("STEWARD_HOST", "second")
    assert config.get_settings() is first
    replacement = load_settings(overrides={"host": "third"})
    config.set_settings(replacement)
    assert config.get_settings().host == "third"


def test_origin_of_unknown_option_raises() -> None:
    with pytest.raises(KeyError):
        load_settings().origin("nope")


# --- the transports' sections, and their flat oslo names ---------------------------------------


def test_transport_options_live_in_their_sections_with_oslo_defaults() -> None:
    settings = load_settings()
    assert settings.rabbit == RabbitSettings()
    assert (settings.rabbit.durable_queues, settings.rabbit.heartbeat_timeout_threshold) == (
        False,
        60,
    )
    assert (settings.nats.jetstream, settings.nats.ack_wait) == (False, 30)
    assert "rabbit.quorum_queue" in Settings.option_names()
    assert "rabbit" not in Settings.option_names()
    assert settings.origin("rabbit") == "default"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        pytest.param("STEWARD_RABBIT_QUORUM_QUEUE", "true", id="flat-oslo-name"),
        pytest.param("STEWARD_RABBIT__QUORUM_QUEUE", "true", id="sectioned"),
        pytest.param("steward_rabbit_quorum_queue", "true", id="flat-lower-case"),
        pytest.param("STEWARD_RABBIT", '{"quorum_queue": true}', id="section-as-json"),
    ],
)
def test_environment_accepts_both_spellings(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    settings = load_settings()
    assert settings.rabbit.quorum_queue is True
    assert settings.origin("rabbit.quorum_queue") == "environment"
    assert settings.origin("rabbit_quorum_queue") == "environment"
    assert settings.origin("rabbit") == "environment"


def test_environment_names_whose_oslo_name_has_another_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEWARD_AMQP_DURABLE_QUEUES", "1")
    monkeypatch.setenv("STEWARD_HEARTBEAT_TIMEOUT_THRESHOLD", "17")
    monkeypatch.setenv("STEWARD_NATS_ACK_WAIT", "7")
    settings = load_settings()
    assert settings.rabbit.durable_queues is True
    assert settings.rabbit.heartbeat_timeout_threshold == 17
    assert settings.nats.ack_wait == 7


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("amqp_durable_queues = true\nnats_jetstream = true\n", id="flat-oslo-names"),
        pytest.param("[rabbit]\ndurable_queues = true\n[nats]\njetstream = true\n", id="sections"),
        pytest.param("rabbit.durable_queues = true\nnats.jetstream = true\n", id="dotted-keys"),
    ],
)
def test_config_file_accepts_both_spellings(text: str, tmp_path: Path) -> None:
    path = tmp_path / "steward.toml"
    path.write_text(text)
    settings = load_settings(config_file=path)
    assert (settings.rabbit.durable_queues, settings.nats.jetstream) == (True, True)
    assert settings.origin("rabbit.durable_queues") == "file"
    assert settings.origin("nats") == "file"
    assert settings.origin("rabbit.quorum_queue") == "default"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"rabbit_retry_interval": "0.5"}, id="flat-oslo-name"),
        pytest.param({"rabbit.retry_interval": "0.5"}, id="dotted"),
        pytest.param({"rabbit": {"retry_interval": 0.5}}, id="section"),
        pytest.param({"rabbit": RabbitSettings(retry_interval=0.5)}, id="section-model"),
    ],
)
def test_overrides_accept_every_spelling(overrides: dict[str, object]) -> None:
    settings = load_settings(overrides=overrides)
    assert settings.rabbit.retry_interval == 0.5
    assert settings.rabbit.retry_backoff == 2.0
    assert settings.origin("rabbit.retry_interval") == "command line"


def test_keyword_arguments_accept_the_flat_names() -> None:
    settings = Settings(
        rabbit=RabbitSettings(quorum_queue=True),
        rabbit_retry_interval=0.5,  # type: ignore[call-arg]  # an oslo name, as an alias
        nats_jetstream=True,
    )
    assert (settings.rabbit.quorum_queue, settings.rabbit.retry_interval) == (True, 0.5)
    assert settings.nats == NatsSettings(jetstream=True)


def test_precedence_holds_across_spellings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "steward.toml"
    path.write_text("[rabbit]\nretry_interval = 3.0\nretry_backoff = 3.0\ninterval_max = 3.0\n")
    monkeypatch.setenv("STEWARD_RABBIT_RETRY_BACKOFF", "4")  # flat beats the file's section
    monkeypatch.setenv("STEWARD_RABBIT_INTERVAL_MAX", "4")
    monkeypatch.setenv("STEWARD_RABBIT__INTERVAL_MAX", "5")  # sectioned beats flat in one source
    settings = load_settings(config_file=path, overrides={"rabbit_retry_interval": "6"})
    assert settings.rabbit.retry_interval == 6
    assert settings.rabbit.retry_backoff == 4
    assert settings.rabbit.interval_max == 5
    assert settings.origin("rabbit.retry_interval") == "command line"
    assert settings.origin("rabbit.retry_backoff") == "environment"
    assert settings.origin("rabbit") == "command line"


@pytest.mark.parametrize(
    ("variable", "shown"),
    [
        pytest.param("STEWARD_NATS_STREAM_REPLICAS", "STEWARD_NATS_STREAM_REPLICAS", id="flat"),
        pytest.param(
            "STEWARD_NATS__STREAM_REPLICAS", "STEWARD_NATS__STREAM_REPLICAS", id="section"
        ),
    ],
)
def test_bad_sectioned_value_names_the_option_and_the_variable_used(
    variable: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "9")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"option `nats.stream_replicas` (from environment: {shown})" in message
    assert "less than or equal to 5" in message
    assert "'9'" in message


def test_unknown_option_in_a_section_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "steward.toml"
    path.write_text("[rabbit]\nquorum_queues = true\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=path)
    message = str(caught.value)
    assert f"unknown option `rabbit.quorum_queues` (from file: {path})" in message
    assert "rabbit.quorum_queue," in message


def test_no_transport_option_is_mutable_or_secret() -> None:
    assert not {name for name in Settings.mutable_options() if "." in name}
    assert not {name for name in Settings.secret_options() if "." in name}


def test_masked_lists_sections_nested_or_dotted() -> None:
    settings = load_settings(overrides={"nats_jetstream": "true"})
    assert settings.masked()["nats"] == settings.nats.model_dump()
    dotted = settings.masked(dotted=True)
    assert list(dotted) == Settings.option_names()
    assert dotted["nats.jetstream"] is True


def test_reread_reads_the_same_file_environment_and_overrides(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(config_file=config_file, overrides={"control_exchange": "nova"})
    config_file.write_text('host = "changed"\nreport_interval = 3\n')
    monkeypatch.setenv("STEWARD_SERVICE_DOWN_TIME", "40")
    again = settings.reread()
    assert (again.host, again.report_interval, again.service_down_time) == ("changed", 3, 40)
    assert again.control_exchange == "nova"
    assert again.origin("control_exchange") == "command line"
    assert settings.host == "from-file"  # frozen: rereading makes new settings


def test_settings_made_directly_reread_the_defaults_and_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(host="given")
    monkeypatch.setenv("STEWARD_REPORT_INTERVAL", "2")
    again = settings.reread()
    assert again.report_interval == 2
    assert again.host == socket.gethostname()


def test_public_import_paths_keep_working() -> None:
    from steward import Settings as TopSettings
    from steward.config import (
        ENV_PREFIX,
        get_settings,
        set_settings,
    )

    assert TopSettings is Settings
    assert ENV_PREFIX == "STEWARD_"
    assert callable(get_settings)
    assert callable(set_settings)
    assert set(config.__all__) >= {"Settings", "get_settings", "load_settings", "mask_url"}


def test_the_configuration_doc_lists_every_option_and_flat_name() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for name in Settings.option_names():
        assert f"`{name}`" in doc, name
    for flat in ("amqp_durable_queues", "heartbeat_timeout_threshold", "nats_ack_wait"):
        assert f"`{flat}`" in doc, flat


def test_flat_names_are_unique_and_never_an_option_of_their_own() -> None:
    from steward.config._sources import flat_aliases

    aliases = flat_aliases(Settings)
    assert len(aliases) == sum(len(model.model_fields) for model in (RabbitSettings, NatsSettings))
    assert not set(aliases) & set(Settings.model_fields)
