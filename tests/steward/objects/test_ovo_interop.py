"""steward's versioned objects against unmodified oslo.versionedobjects, primitive for primitive."""

from __future__ import annotations

import datetime
import enum
import uuid
import warnings
from typing import Annotated, Any

import pytest

from steward.objects import IncompatibleObjectVersion, Since, VersionedObject, default_factory

with warnings.catch_warnings():
    # oslo.versionedobjects imports oslo.messaging, which imports oslo.service's eventlet
    # backend, which announces deprecations.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    from oslo_versionedobjects import base as ovo_base
    from oslo_versionedobjects import exception as ovo_exception
    from oslo_versionedobjects import fields as ovo_fields

NAMESPACE = "steward-interop"
KEY = "nova_object"


class Power(enum.Enum):
    ON = "on"
    OFF = "off"


class Flavor(VersionedObject):
    OBJ_SERIAL_NAMESPACE = KEY
    OBJ_PROJECT_NAMESPACE = NAMESPACE
    VERSION = "1.1"

    name: str
    vcpus: int
    extra_specs: Annotated[dict[str, str] | None, Since("1.1")] = None


class Instance(VersionedObject):
    OBJ_SERIAL_NAMESPACE = KEY
    OBJ_PROJECT_NAMESPACE = NAMESPACE
    VERSION = "1.2"

    uuid: uuid.UUID
    host: str | None = None
    power: Power = Power.OFF
    launched_at: datetime.datetime | None = None
    flavor: Flavor
    tags: Annotated[list[str], Since("1.1")] = default_factory(list)

    obj_relationships = {"flavor": [("1.0", "1.0"), ("1.2", "1.1")]}  # noqa: RUF012


class _OvoBase(ovo_base.VersionedObject):
    OBJ_SERIAL_NAMESPACE = KEY
    OBJ_PROJECT_NAMESPACE = NAMESPACE


@ovo_base.VersionedObjectRegistry.register
class OvoFlavor(_OvoBase):
    obj_name = classmethod(lambda cls: "Flavor")
    VERSION = "1.1"
    fields = {  # noqa: RUF012
        "name": ovo_fields.StringField(),
        "vcpus": ovo_fields.IntegerField(),
        "extra_specs": ovo_fields.DictOfStringsField(nullable=True),
    }

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        # What steward's Since("1.1") does without this method.
        super().obj_make_compatible(primitive, target_version)
        if target_version == "1.0":
            primitive.pop("extra_specs", None)


@ovo_base.VersionedObjectRegistry.register
class OvoInstance(_OvoBase):
    obj_name = classmethod(lambda cls: "Instance")
    VERSION = "1.2"
    fields = {  # noqa: RUF012
        "uuid": ovo_fields.UUIDField(),
        "host": ovo_fields.StringField(nullable=True),
        "power": ovo_fields.EnumField(["on", "off"]),
        "launched_at": ovo_fields.DateTimeField(nullable=True),
        "flavor": ovo_fields.ObjectField("Flavor"),
        "tags": ovo_fields.ListOfStringsField(),
    }
    obj_relationships = {"flavor": [("1.0", "1.0"), ("1.2", "1.1")]}  # noqa: RUF012

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        super().obj_make_compatible(primitive, target_version)
        if target_version == "1.0":  # steward's Since("1.1") on `tags`
            primitive.pop("tags", None)


LAUNCHED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def steward_instance() -> Instance:
    return Instance(
        uuid=uuid.UUID(int=42),
        host="node1",
        power=Power.ON,
        launched_at=LAUNCHED,
        flavor=Flavor(name="m1.small", vcpus=2, extra_specs={"hw:cpu": "1"}),
        tags=["web"],
    )


def test_ovo_reads_a_steward_instance_and_sees_its_changes() -> None:
    instance = steward_instance()
    instance.obj_reset_changes(recursive=True)
    instance.host = "node2"
    received = OvoInstance.obj_from_primitive(instance.obj_to_primitive())
    assert isinstance(received, OvoInstance)
    ovo: Any = received  # OVO's fields are set dynamically: no types to check them by
    assert ovo.uuid == str(uuid.UUID(int=42))
    assert ovo.host == "node2"
    assert ovo.power == "on"
    assert ovo.launched_at == LAUNCHED
    assert ovo.flavor.__class__.__name__ == "OvoFlavor"
    assert ovo.flavor.extra_specs == {"hw:cpu": "1"}
    assert ovo.tags == ["web"]
    assert ovo.obj_what_changed() == {"host"}


def test_steward_reads_an_ovo_instance_typed_and_with_its_changes() -> None:
    ovo: Any = OvoInstance(
        uuid=str(uuid.UUID(int=42)),
        host="node1",
        power="off",
        launched_at=LAUNCHED,
        flavor=OvoFlavor(name="m1", vcpus=4, extra_specs=None),
        tags=[],
    )
    ovo.obj_reset_changes(recursive=True)
    ovo.flavor.vcpus = 8
    instance = VersionedObject.obj_from_primitive(ovo.obj_to_primitive())
    assert isinstance(instance, Instance)
    assert instance.uuid == uuid.UUID(int=42)
    assert instance.power is Power.OFF
    assert instance.launched_at == LAUNCHED
    assert instance.flavor.vcpus == 8
    assert instance.obj_what_changed() == {"flavor"}
    assert instance.flavor.obj_what_changed() == {"vcpus"}


def test_both_write_the_same_primitive() -> None:
    ovo: Any = OvoInstance(
        uuid=str(uuid.UUID(int=42)),
        host="node1",
        power="on",
        launched_at=LAUNCHED,
        flavor=OvoFlavor(name="m1.small", vcpus=2, extra_specs={"hw:cpu": "1"}),
        tags=["web"],
    )
    for target in (None, "1.1", "1.0"):
        ours = steward_instance().obj_to_primitive(target_version=target)
        theirs = ovo.obj_to_primitive(target_version=target)
        assert _normalised(ours) == _normalised(theirs), target


def test_a_too_new_steward_object_is_refused_by_ovo_and_the_reverse() -> None:
    primitive = steward_instance().obj_to_primitive()
    primitive[f"{KEY}.version"] = "1.3"
    with pytest.raises(ovo_exception.IncompatibleObjectVersion):
        OvoInstance.obj_from_primitive(primitive)
    with pytest.raises(IncompatibleObjectVersion, match=r"Version 1\.3 of Instance"):
        VersionedObject.obj_from_primitive(primitive)


def _normalised(primitive: Any) -> Any:
    """Changes compared as sets, and only those the data carries.

    OVO lists a field a backport dropped among the changes still (it computes them first);
    steward does not send a change of a field it does not send.
    """
    if isinstance(primitive, list):
        return [_normalised(item) for item in primitive]
    if not isinstance(primitive, dict):
        return primitive
    data = primitive.get(f"{KEY}.data", {})
    return {
        key: sorted(set(value) & set(data)) if key.endswith(".changes") else _normalised(value)
        for key, value in primitive.items()
    }
