from __future__ import annotations

import datetime
import enum
import uuid
from typing import Annotated, Any

import pytest

from steward.objects import (
    IncompatibleObjectVersion,
    Since,
    UnsupportedObjectError,
    VersionedObject,
    VersionedObjectRegistry,
    default_factory,
)


class Power(enum.Enum):
    ON = "on"
    OFF = "off"


class SampleObject(VersionedObject, register=False):
    OBJ_SERIAL_NAMESPACE = "test_object"
    OBJ_PROJECT_NAMESPACE = "steward-tests"


class Flavor(SampleObject):
    VERSION = "1.1"

    name: str
    vcpus: int
    extra_specs: Annotated[dict[str, str] | None, Since("1.1")] = None


class Instance(SampleObject):
    VERSION = "1.2"

    uuid: uuid.UUID
    host: str | None = None
    power: Power = Power.OFF
    launched_at: datetime.datetime | None = None
    flavor: Flavor
    tags: Annotated[list[str], Since("1.1")] = default_factory(list)
    old_flavors: Annotated[list[Flavor], Since("1.2")] = default_factory(list)

    obj_relationships = {"flavor": [("1.0", "1.0"), ("1.2", "1.1")]}  # noqa: RUF012


def make_instance(**values: Any) -> Instance:
    return Instance(uuid=uuid.UUID(int=7), flavor=Flavor(name="m1", vcpus=2), **values)


KEY = "test_object"


def test_a_primitive_is_ovos_shape_with_only_the_set_fields_and_the_changes() -> None:
    instance = make_instance(launched_at=datetime.datetime(2026, 1, 2, 3, 4, 5, 678901))
    primitive = instance.obj_to_primitive()
    assert primitive[f"{KEY}.name"] == "Instance"
    assert primitive[f"{KEY}.namespace"] == "steward-tests"
    assert primitive[f"{KEY}.version"] == "1.2"
    data = primitive[f"{KEY}.data"]
    assert data["uuid"] == "00000000-0000-0000-0000-000000000007"
    assert data["launched_at"] == "2026-01-02T03:04:05Z"  # OVO's DateTimeField: UTC, seconds
    assert data["power"] == "off"
    assert data["flavor"][f"{KEY}.name"] == "Flavor"
    assert set(primitive[f"{KEY}.changes"]) == set(data)


def test_round_trip_keeps_types_values_and_changes() -> None:
    instance = make_instance(host="node1", tags=["a"])
    instance.obj_reset_changes(recursive=True)
    instance.host = "node2"
    back = VersionedObject.obj_from_primitive(instance.obj_to_primitive())
    assert isinstance(back, Instance)
    assert back.uuid == uuid.UUID(int=7)
    assert back.power is Power.OFF
    assert isinstance(back.flavor, Flavor)
    assert back.flavor.vcpus == 2
    assert back.obj_what_changed() == {"host"}
    assert back.tags == ["a"]


def test_changes_are_tracked_and_nested_changes_count_for_the_parent() -> None:
    instance = make_instance()
    instance.obj_reset_changes(recursive=True)
    assert instance.obj_what_changed() == set()
    instance.flavor.vcpus = 4
    assert instance.obj_what_changed() == {"flavor"}
    assert instance.obj_get_changes()["flavor"].vcpus == 4
    instance.obj_reset_changes()
    assert instance.obj_what_changed() == {"flavor"}  # the child still has its own change
    instance.obj_reset_changes(recursive=True)
    assert instance.obj_what_changed() == set()


def test_values_are_checked_and_coerced_as_they_are_set() -> None:
    instance = make_instance()
    instance.flavor.vcpus = "3"  # type: ignore[assignment]  # OVO coerces too
    assert instance.flavor.vcpus == 3
    with pytest.raises(ValueError, match=r"Flavor\.vcpus"):
        instance.flavor.vcpus = "three"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="not nullable"):
        instance.flavor.name = None  # type: ignore[assignment]
    with pytest.raises(TypeError, match="no field 'colour'"):
        Flavor(name="m1", vcpus=1, colour="red")


def test_an_unset_field_is_loaded_by_obj_load_attr() -> None:
    flavor = Flavor(name="m1")
    assert not flavor.obj_attr_is_set("vcpus")
    assert flavor.obj_attr_is_set("extra_specs")  # its default
    with pytest.raises(NotImplementedError, match="Cannot load 'vcpus'"):
        _ = flavor.vcpus

    class Lazy(Flavor, name="LazyFlavor"):
        def obj_load_attr(self, attrname: str) -> Any:
            setattr(self, attrname, 8)
            return getattr(self, attrname)

    assert Lazy(name="m2").vcpus == 8


def test_defaults_are_copies_or_made_by_their_factory() -> None:
    first, second = make_instance(), make_instance()
    first.tags.append("x")
    assert second.tags == []

    class Shared(SampleObject):
        names: list[str] = ["a"]  # noqa: RUF012 - a plain default is copied per object

    one, other = Shared(), Shared()
    one.names.append("b")
    assert other.names == ["a"]


def test_backporting_drops_fields_the_target_does_not_know_and_backports_children() -> None:
    instance = make_instance(tags=["a"], old_flavors=[Flavor(name="m0", vcpus=1)])
    instance.flavor.extra_specs = {"hw": "x"}
    v10 = instance.obj_to_primitive(target_version="1.0")
    data = v10[f"{KEY}.data"]
    assert v10[f"{KEY}.version"] == "1.0"
    assert "tags" not in data
    assert "old_flavors" not in data
    assert data["flavor"][f"{KEY}.version"] == "1.0"
    assert "extra_specs" not in data["flavor"][f"{KEY}.data"]
    assert "tags" not in v10[f"{KEY}.changes"]
    v11 = instance.obj_to_primitive(target_version="1.1")
    assert v11[f"{KEY}.data"]["tags"] == ["a"]
    assert v11[f"{KEY}.data"]["flavor"][f"{KEY}.version"] == "1.0"  # 1.2 is where 1.1 starts
    pinned = instance.obj_to_primitive(target_version="1.1", version_manifest={"Flavor": "1.1"})
    assert pinned[f"{KEY}.data"]["flavor"][f"{KEY}.version"] == "1.1"


def test_obj_make_compatible_handles_what_since_does_not() -> None:
    class Renamed(SampleObject):
        VERSION = "1.1"
        label: str

        def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
            if target_version == "1.0":
                primitive["name"] = primitive.pop("label")

    primitive = Renamed(label="x").obj_to_primitive(target_version="1.0")
    assert primitive[f"{KEY}.data"] == {"name": "x"}


def test_a_too_new_version_is_incompatible_as_in_ovo() -> None:
    primitive = make_instance().obj_to_primitive()
    primitive[f"{KEY}.version"] = "1.5"
    with pytest.raises(
        IncompatibleObjectVersion,
        match=r"^Version 1\.5 of Instance is not supported, supported version is 1\.2$",
    ):
        VersionedObject.obj_from_primitive(primitive)
    primitive[f"{KEY}.version"] = "2.0"
    with pytest.raises(IncompatibleObjectVersion):
        VersionedObject.obj_from_primitive(primitive)
    with pytest.raises(IncompatibleObjectVersion):
        make_instance().obj_to_primitive(target_version="1.3")


def test_an_older_version_is_read_by_the_newest_class_of_its_major() -> None:
    primitive = make_instance().obj_to_primitive(target_version="1.0")
    assert isinstance(VersionedObject.obj_from_primitive(primitive), Instance)


def test_unknown_objects_and_malformed_primitives_are_refused_clearly() -> None:
    with pytest.raises(UnsupportedObjectError, match="unsupported object type"):
        VersionedObject.obj_from_primitive(
            {
                f"{KEY}.name": "Nope",
                f"{KEY}.namespace": "x",
                f"{KEY}.version": "1.0",
                f"{KEY}.data": {},
            }
        )
    with pytest.raises(UnsupportedObjectError, match="missing"):
        VersionedObject.obj_from_primitive({f"{KEY}.name": "Flavor"})
    with pytest.raises(UnsupportedObjectError, match=r"no '<namespace>\.name'"):
        VersionedObject.obj_from_primitive({"x": 1})
    bad = Flavor(name="m1", vcpus=1).obj_to_primitive()
    bad[f"{KEY}.data"]["vcpus"] = "many"
    with pytest.raises(UnsupportedObjectError, match=r"Flavor\.vcpus"):
        VersionedObject.obj_from_primitive(bad)


def test_versions_of_one_object_live_side_by_side() -> None:
    class Volume(SampleObject, name="Volume"):
        VERSION = "1.0"
        size: int

    class VolumeV11(SampleObject, name="Volume"):
        VERSION = "1.1"
        size: int
        kind: Annotated[str, Since("1.1")] = "ssd"

    versions = VersionedObjectRegistry.versions("steward-tests", "Volume")
    assert versions == {(1, 0): Volume, (1, 1): VolumeV11}
    old = Volume(size=1).obj_to_primitive()
    assert isinstance(VersionedObject.obj_from_primitive(old), VolumeV11)


def test_a_malformed_version_fails_at_the_class_statement() -> None:
    with pytest.raises(ValueError, match=r"'MAJOR\.MINOR'"):

        class Broken(SampleObject, register=False):
            VERSION = "one"


def test_clone_and_repr() -> None:
    flavor = Flavor(name="m1")
    copy = flavor.obj_clone()
    copy.name = "m2"
    assert flavor.name == "m1"
    assert repr(flavor) == "Flavor(name='m1', vcpus=<?>, extra_specs=None)"
