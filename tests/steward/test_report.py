from __future__ import annotations

from steward.config import load_settings
from steward.report import build_report, format_report


def test_report_masks_every_secret_form_in_the_configuration() -> None:
    settings = load_settings(
        overrides={
            "transport_url": "nats://t0kenvalue@127.0.0.1:4222,t0kenvalue@127.0.0.2:4222/ns",
            "database_url": "postgresql+asyncpg://me:p@ss/w0rd@127.0.0.1/db?sslpassword=k3y",
        }
    )
    report = build_report(settings=settings)
    assert report["configuration"]["transport_url"] == (
        "nats://***@127.0.0.1:4222,***@127.0.0.2:4222/ns"
    )
    assert report["configuration"]["database_url"] == (
        "postgresql+asyncpg://me:***@127.0.0.1/db?sslpassword=***"
    )
    text = format_report(report)
    for secret in ("t0kenvalue", "ss/w0rd", "k3y"):
        assert secret not in text
    assert "127.0.0.2:4222" in text


def test_report_text_masks_a_url_in_a_periodic_tasks_error() -> None:
    report = build_report(settings=load_settings())
    report["services"] = [
        {
            "binary": "steward-x",
            "topic": "x",
            "manager": "XManager",
            "rpc": {"running": False},
            "periodic_tasks": [
                {
                    "name": "sync",
                    "spacing": 60.0,
                    "runs": 1,
                    "failures": 1,
                    "running": False,
                    "last_run_ago": 1.0,
                    "last_duration": 0.1,
                    "last_error": "OSError: cannot reach amqp://u:hunter2@10.0.0.1/",
                    "next_due_in": 59.0,
                }
            ],
        }
    ]
    text = format_report(report)
    assert "hunter2" not in text
    assert "amqp://u:***@10.0.0.1/" in text


def test_report_lists_a_transports_options_one_per_line() -> None:
    report = build_report(settings=load_settings(overrides={"rabbit_quorum_queue": "true"}))
    assert report["configuration"]["rabbit.quorum_queue"] is True
    assert "   rabbit.quorum_queue = True" in format_report(report)
