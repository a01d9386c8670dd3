from __future__ import annotations

import pytest
from benchmarks.__main__ import main

from benchmarks import MODULES, load


def test_every_benchmark_runs_quickly_and_prints_its_tables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--quick", "--no-save", *MODULES]) == 0
    output = capsys.readouterr().out
    assert "Periodic pass, no task due" in output
    assert "Traced manager method vs plain method" in output
    assert "RPC on RabbitMQ: median" in output
    assert "RabbitMQ figures skipped" not in output  # the broker is there, as in CI
    assert "RPC on NATS: median" in output
    assert "NATS figures skipped" not in output  # so is NATS
    assert "FAILED" not in output  # no system's server or client failed twice
    assert "memory:// call vs a bare asyncio request/reply pair" in output
    assert "Tracing on a memory:// call" in output
    assert "steward" in output


def test_unknown_benchmark_is_named() -> None:
    with pytest.raises(LookupError, match="expected one of periodic, tracing, rpc, rpc-tracing"):
        load("nope")


def test_a_hyphenated_name_loads_its_module() -> None:
    assert load("rpc-tracing").NAME == "rpc-tracing"
