from __future__ import annotations

from pathlib import Path

import pytest

from pocketcloud.volume.driver import VolumeDriver
from pocketcloud.volume.drivers.fake import FakeVolumeDriver
from pocketcloud.volume.drivers.file import GIB, FileVolumeDriver


def test_both_volume_drivers_are_volume_drivers(tmp_path: Path) -> None:
    assert isinstance(FileVolumeDriver(data_dir=tmp_path), VolumeDriver)
    assert isinstance(FakeVolumeDriver(), VolumeDriver)


async def test_a_volume_is_a_sparse_file_of_its_size(tmp_path: Path) -> None:
    driver = FileVolumeDriver(data_dir=tmp_path)
    await driver.create_volume("v1", 5)
    path = tmp_path / "volumes" / "v1.img"
    assert path.stat().st_size == 5 * GIB
    assert await driver.get_usage("v1") < GIB
    assert await driver.initialize_connection("v1", "compute1") == {"path": str(path)}
    await driver.delete_volume("v1")
    await driver.delete_volume("v1")  # idempotent
    assert not path.exists()
    assert await driver.get_usage("v1") == 0


@pytest.mark.parametrize("volume_id", ["../x", "", ".hidden", "a/b"])
def test_volume_ids_that_are_not_plain_names_are_refused(tmp_path: Path, volume_id: str) -> None:
    with pytest.raises(ValueError, match="plain name"):
        FileVolumeDriver(data_dir=tmp_path).path_of(volume_id)
