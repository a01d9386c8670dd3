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
    assert "steward" in output


def test_unknown_benchmark_is_named() -> None:
    with pytest.raises(LookupError, match="expected one of periodic, tracing"):
        load("nope")
