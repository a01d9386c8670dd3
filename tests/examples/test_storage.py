from __future__ import annotations

from pathlib import Path

from examples import storage


async def test_compute_calls_the_chosen_volume_host(tmp_path: Path) -> None:
    results = await storage.main(tmp_path)
    assert [(r["volume"]["host"], r["volume"]["size"]) for r in results] == [
        ("storage1", 10),
        ("storage2", 20),
        ("storage2", 5),
    ]
    assert [r["volume"]["name"] for r in results] == ["vm-1-disk1", "vm-1-disk2", "vm-1-disk3"]
    assert {r["compute_host"] for r in results} == {"compute1"}
