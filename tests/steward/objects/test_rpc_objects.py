"""Versioned objects as RPC arguments and results: steward to steward, and with oslo both ways."""

from __future__ import annotations

import asyncio
import datetime
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from oslo_config import cfg

from steward import RequestContext
from steward.errors import IncompatibleObjectVersion, InvalidArguments
from steward.objects import Since, VersionedObject, default_factory
from steward.objects.serializer import ObjectSerializer
from steward.rpc import RPCClient, RPCServer, Target, get_transport
from steward.rpc.transports.base import Transport

with warnings.catch_warnings():
    # oslo.messaging imports oslo.service's eventlet backend, which announces deprecations.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import oslo_messaging
    from oslo_context import context as oslo_context
    from oslo_versionedobjects import base as ovo_base
    from oslo_versionedobjects import fields as ovo_fields

GUARD = 30.0
NAMESPACE = "steward-rpc-objects"
KEY = "nova_object"


class NovaObject(VersionedObject, register=False):
    OBJ_SERIAL_NAMESPACE = KEY
    OBJ_PROJECT_NAMESPACE = NAMESPACE


class Flavor(NovaObject):
    VERSION = "1.0"
    name: str
    vcpus: int


class Instance(NovaObject):
    VERSION = "1.1"
    uuid: uuid.UUID
    host: str | None = None
    launched_at: datetime.datetime | None = None
    flavor: Flavor
    tags: Annotated[list[str], Since("1.1")] = default_factory(list)


class Compute:
    """A steward endpoint typed with objects."""

    def __init__(self) -> None:
        self.seen: list[Instance] = []

    async def resize(self, context: RequestContext, instance: Instance, vcpus: int) -> Instance:
        self.seen.append(instance)
        instance.obj_reset_changes(recursive=True)
        instance.flavor.vcpus = vcpus
        return instance

    async def flavors(self, context: RequestContext, flavors: list[Flavor]) -> int:
        return sum(flavor.vcpus for flavor in flavors)


LAUNCHED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def instance(**values: Any) -> Instance:
    return Instance(
        uuid=uuid.UUID(int=5),
        host="node1",
        launched_at=LAUNCHED,
        flavor=Flavor(name="m1", vcpus=1),
        tags=["web"],
        **values,
    )


@pytest.fixture
async def memory() -> AsyncIterator[tuple[Transport, Compute]]:
    async with get_transport(f"memory://objects-{uuid.uuid4().hex[:8]}") as transport:
        compute = Compute()
        async with RPCServer(transport, Target("compute", "node1"), [compute]):
            yield transport, compute


async def test_an_object_argument_arrives_as_its_class_and_comes_back_as_one(
    memory: tuple[Transport, Compute],
) -> None:
    transport, compute = memory
    client = RPCClient(transport, Target("compute"), serializer=ObjectSerializer())
    result = await client.call(RequestContext(), "resize", instance=instance(), vcpus=4)
    (received,) = compute.seen
    assert isinstance(received, Instance)
    assert received.launched_at == LAUNCHED
    assert isinstance(result, Instance)
    assert result.flavor.vcpus == 4
    assert result.obj_what_changed() == {"flavor"}
    # Without the object serializer the caller gets the primitive (as oslo's plain clients do).
    plain = await RPCClient(transport, Target("compute")).call(
        RequestContext(), "resize", instance=instance(), vcpus=2
    )
    assert plain[f"{KEY}.name"] == "Instance"


async def test_a_list_of_objects_arrives_as_objects(memory: tuple[Transport, Compute]) -> None:
    transport, _ = memory
    client = RPCClient(transport, Target("compute"))
    flavors = [Flavor(name="a", vcpus=1), Flavor(name="b", vcpus=3)]
    assert await client.call(RequestContext(), "flavors", flavors=flavors) == 4


async def test_a_manifest_backports_what_leaves(memory: tuple[Transport, Compute]) -> None:
    transport, compute = memory
    client = RPCClient(
        transport, Target("compute"), serializer=ObjectSerializer({"Instance": "1.0"})
    )
    await client.call(RequestContext(), "resize", instance=instance(), vcpus=2)
    (received,) = compute.seen
    assert not received.obj_attr_is_set("tags")  # 1.0 does not carry them


async def test_a_too_new_object_is_refused_as_incompatible(
    memory: tuple[Transport, Compute],
) -> None:
    transport, _ = memory
    primitive = instance().obj_to_primitive()
    primitive[f"{KEY}.version"] = "1.7"
    with pytest.raises(IncompatibleObjectVersion, match=r"Version 1\.7 of Instance"):
        await RPCClient(transport, Target("compute")).call(
            RequestContext(), "resize", instance=primitive, vcpus=2
        )


async def test_what_is_not_an_object_is_refused_by_argument_name(
    memory: tuple[Transport, Compute],
) -> None:
    transport, _ = memory
    client = RPCClient(transport, Target("compute"))
    with pytest.raises(InvalidArguments, match="`instance`"):
        await client.call(RequestContext(), "resize", instance={"host": "x"}, vcpus=2)
    unknown = {f"{KEY}.name": "Nope", f"{KEY}.namespace": NAMESPACE, f"{KEY}.version": "1.0",
               f"{KEY}.data": {}}  # fmt: skip
    with pytest.raises(InvalidArguments, match="unsupported object type"):
        await client.call(RequestContext(), "resize", instance=unknown, vcpus=2)


# --- with unmodified oslo.messaging and oslo.versionedobjects, on RabbitMQ ------------------------


class _OvoBase(ovo_base.VersionedObject):
    OBJ_SERIAL_NAMESPACE = KEY
    OBJ_PROJECT_NAMESPACE = NAMESPACE


@ovo_base.VersionedObjectRegistry.register
class OvoFlavor(_OvoBase):
    obj_name = classmethod(lambda cls: "Flavor")
    VERSION = "1.0"
    fields = {"name": ovo_fields.StringField(), "vcpus": ovo_fields.IntegerField()}  # noqa: RUF012


@ovo_base.VersionedObjectRegistry.register
class OvoInstance(_OvoBase):
    obj_name = classmethod(lambda cls: "Instance")
    VERSION = "1.1"
    fields = {  # noqa: RUF012
        "uuid": ovo_fields.UUIDField(),
        "host": ovo_fields.StringField(nullable=True),
        "launched_at": ovo_fields.DateTimeField(nullable=True),
        "flavor": ovo_fields.ObjectField("Flavor"),
        "tags": ovo_fields.ListOfStringsField(),
    }


class OsloCompute:
    """An oslo.messaging endpoint receiving OVO objects through VersionedObjectSerializer."""

    def resize(self, ctxt: Any, instance: Any, vcpus: int) -> Any:
        instance.obj_reset_changes(recursive=True)
        instance.flavor.vcpus = vcpus
        return instance


@pytest.fixture
async def oslo_transport(rabbit_url: str) -> AsyncIterator[Any]:
    transport = await asyncio.to_thread(
        oslo_messaging.get_rpc_transport,
        cfg.CONF,
        url=rabbit_url.replace("amqp://", "rabbit://", 1),
    )
    yield transport
    await asyncio.to_thread(transport.cleanup)


@pytest.fixture
def topic() -> str:
    return f"objects_{uuid.uuid4().hex[:12]}"


class OvoSerializer(ovo_base.VersionedObjectSerializer):
    # As nova's NovaObjectSerializer: objects of this base ("nova_object.*" keys).
    OBJ_BASE_CLASS = _OvoBase


def ovo_serializer() -> Any:
    return OvoSerializer()


async def test_an_oslo_client_sends_an_ovo_instance_to_a_typed_steward_endpoint(
    rabbit_url: str, oslo_transport: Any, topic: str
) -> None:
    compute = Compute()
    async with (
        get_transport(rabbit_url) as transport,
        RPCServer(transport, Target(topic, "s1"), [compute]),
    ):
        client = oslo_messaging.get_rpc_client(
            oslo_transport, oslo_messaging.Target(topic=topic), serializer=ovo_serializer()
        )
        ovo = OvoInstance(
            uuid=str(uuid.UUID(int=9)), host="node1", launched_at=LAUNCHED,
            flavor=OvoFlavor(name="m1", vcpus=1), tags=[],
        )  # fmt: skip
        ctxt = oslo_context.RequestContext(user_id="u1")
        result: Any = await asyncio.to_thread(
            client.prepare(timeout=GUARD).call, ctxt, "resize", instance=ovo, vcpus=8
        )
    (received,) = compute.seen
    assert isinstance(received, Instance)
    assert received.uuid == uuid.UUID(int=9)
    assert type(result).__name__ == "OvoInstance"
    assert result.flavor.vcpus == 8  # OVO's fields are set dynamically: typed Any here
    assert result.obj_what_changed() == {"flavor"}


async def test_a_steward_client_sends_an_instance_to_an_oslo_server(
    rabbit_url: str, oslo_transport: Any, topic: str
) -> None:
    target = oslo_messaging.Target(topic=topic, server="o1")
    server = oslo_messaging.get_rpc_server(
        oslo_transport, target, [OsloCompute()], serializer=ovo_serializer()
    )
    await asyncio.to_thread(server.start)
    try:
        async with get_transport(rabbit_url) as transport:
            client = RPCClient(
                transport, Target(topic), timeout=GUARD, serializer=ObjectSerializer()
            )
            result = await client.call(RequestContext(), "resize", instance=instance(), vcpus=6)
    finally:
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.wait)
    assert isinstance(result, Instance)
    assert result.flavor.vcpus == 6
    assert result.obj_what_changed() == {"flavor"}
    assert result.launched_at == LAUNCHED
