from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import steward
from steward.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"steward {steward.__version__}"


def test_config_show_gives_every_option_with_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "steward.toml"
    path.write_text('control_exchange = "nova"\n')
    monkeypatch.setenv("STEWARD_REPORT_INTERVAL", "4")
    result = runner.invoke(
        app,
        [
            "--config-file", str(path),
            "--set", "transport_url=amqp://guest:hunter2@127.0.0.1:5672/",
            "config", "show", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert set(rows) == set(steward.Settings.option_names())
    assert rows["control_exchange"] == {
        "value": "nova",
        "source": "file",
        "location": str(path),
        "mutable": False,
    }
    assert rows["report_interval"] == {
        "value": 4.0,
        "source": "environment",
        "location": "STEWARD_REPORT_INTERVAL",
        "mutable": True,
    }
    assert rows["transport_url"]["value"] == "amqp://guest:***@127.0.0.1:5672/"
    assert rows["transport_url"]["source"] == "command line"
    assert rows["host"]["source"] == "default"
    assert "hunter2" not in result.output


def test_config_show_table_masks_secrets() -> None:
    result = runner.invoke(
        app, ["--set", "database_url=postgresql://u:opensesame@127.0.0.1/db", "config", "show"]
    )
    assert result.exit_code == 0, result.output
    assert "opensesame" not in result.output
    assert "database_url" in result.output
    assert "command line" in result.output


def test_bad_setting_exits_2_with_a_clear_message() -> None:
    result = runner.invoke(app, ["--set", "report_interval=soon", "config", "show"])
    assert result.exit_code == 2
    assert "report_interval" in result.output
    assert "'soon'" in result.output


def test_malformed_override_is_rejected() -> None:
    result = runner.invoke(app, ["--set", "no-equals-sign", "config", "show"])
    assert result.exit_code == 2
    assert "NAME=VALUE" in result.output


@pytest.mark.parametrize(
    ("option", "url", "secret", "shown"),
    [
        pytest.param(
            "transport_url",
            "nats://s3cr3tt0ken@127.0.0.1:4222,nats://s3cr3tt0ken@127.0.0.2:4222",
            "s3cr3tt0ken",
            "nats://***@127.0.0.1:4222,nats://***@127.0.0.2:4222",
            id="nats-token",
        ),
        pytest.param(
            "transport_url",
            "amqp://guest:p@ss:w0rd@127.0.0.1:5672/",
            "ss:w0rd",
            "amqp://guest:***@127.0.0.1:5672/",
            id="at-in-password",
        ),
        pytest.param(
            "database_url",
            "postgresql://127.0.0.1/db?sslmode=disable&password=opensesame",
            "opensesame",
            "postgresql://127.0.0.1/db?sslmode=disable&password=***",
            id="query-password",
        ),
    ],
)
def test_config_show_masks_every_secret_form(
    option: str, url: str, secret: str, shown: str
) -> None:
    as_json = runner.invoke(app, ["--set", f"{option}={url}", "config", "show", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)[option]["value"] == shown
    as_table = runner.invoke(app, ["--set", f"{option}={url}", "config", "show"])
    assert as_table.exit_code == 0, as_table.output
    for output in (as_json.output, as_table.output):
        assert secret not in output


def test_an_error_line_masks_the_url_it_quotes() -> None:
    result = runner.invoke(
        app, ["--set", "transport_url=bogus://t0kenvalue@127.0.0.1/", "call", "topic", "ping"]
    )
    assert result.exit_code != 0
    assert "bogus://***@127.0.0.1/" in result.output
    assert "t0kenvalue" not in result.output
