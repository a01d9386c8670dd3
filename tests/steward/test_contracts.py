from __future__ import annotations

import datetime
import json
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Annotated, ClassVar

import jsonschema
import pytest
from typer.testing import CliRunner

from steward import Manager, RequestContext
from steward.cli import app
from steward.contracts import asyncapi, compare, contract, describe_api, object_fingerprint
from steward.objects import Since, VersionedObject, default_factory
from steward.rpc import Target

SCHEMA = Path(__file__).parent / "data" / "asyncapi-3.0.0.json"
runner = CliRunner()


class ContractObject(VersionedObject, register=False):
    OBJ_SERIAL_NAMESPACE = "nova_object"
    OBJ_PROJECT_NAMESPACE = "steward-contracts"


class Flavor(ContractObject):
    VERSION = "1.0"
    name: str
    vcpus: int


class Server(ContractObject):
    VERSION = "1.1"
    id: uuid.UUID
    host: str | None = None
    created_at: datetime.datetime | None = None
    flavor: Flavor
    tags: Annotated[list[str], Since("1.1")] = default_factory(list)


class ComputeManager(Manager):
    target: ClassVar[Target] = Target(version="1.3")

    async def build(self, context: RequestContext, server: Server, retries: int = 0) -> Server:
        return server

    def list_servers(self, context: RequestContext, host: str | None = None) -> list[Server]:
        return []

    async def ping(self, context: RequestContext, payload: dict[str, int]) -> None:
        return None


def test_the_api_is_what_the_dispatcher_serves() -> None:
    api = describe_api(ComputeManager)
    assert api.version == "1.3"
    assert list(api.methods) == ["build", "list_servers", "ping"]  # no lifecycle hooks
    assert api.methods["build"].signature() == (
        "build(server: Server@steward-contracts, retries: int = ...) -> Server@steward-contracts"
    )
    assert set(api.objects()) == {"steward-contracts.Server", "steward-contracts.Flavor"}


def test_an_object_fingerprint_changes_with_its_fields_not_their_order_of_reading() -> None:
    first = object_fingerprint(Server)
    assert first.startswith("1.1-")
    assert object_fingerprint(Server) == first

    class Server2(ContractObject, name="Server", register=False):
        VERSION = "1.1"
        id: uuid.UUID
        host: str | None = None
        created_at: datetime.datetime | None = None
        flavor: Flavor
        tags: Annotated[list[str], Since("1.1")] = default_factory(list)
        state: str = "ACTIVE"

    assert object_fingerprint(Server2) != first


def test_a_change_without_a_version_bump_is_an_error_and_with_one_a_note() -> None:
    stored = contract([describe_api(ComputeManager)])

    class Changed(ComputeManager):
        async def build(  # type: ignore[override]  # the change under test
            self, context: RequestContext, server: Server, retries: str = ""
        ) -> Server:
            return server

    changed = describe_api(Changed)
    current = contract([changed])
    current["apis"][describe_api(ComputeManager).name] = current["apis"].pop(changed.name)
    errors, _ = compare(stored, current)
    assert errors == [
        f"API {describe_api(ComputeManager).name} 1.3: method build changed: "
        "build(server: Server@steward-contracts, retries: int = ...) -> Server@steward-contracts"
        " -> build(server: Server@steward-contracts, retries: str = ...) -> "
        "Server@steward-contracts"
    ]
    bumped = json.loads(json.dumps(current))
    bumped["apis"][describe_api(ComputeManager).name]["version"] = "1.4"
    errors, notes = compare(stored, bumped)
    assert errors == []
    assert any("1.3 -> 1.4" in note for note in notes)


def test_an_object_changed_without_its_version_is_an_error() -> None:
    stored = contract([describe_api(ComputeManager)])
    current = json.loads(json.dumps(stored))
    current["objects"]["steward-contracts.Flavor"]["fingerprint"] = "1.0-different"
    errors, _ = compare(stored, current)
    assert errors == [
        "object steward-contracts.Flavor 1.0: its fields changed; bump its VERSION "
        "(and mark new fields Since(the new version))"
    ]


def test_the_asyncapi_document_validates_against_asyncapi_3() -> None:
    document = asyncapi(describe_api(ComputeManager), topic="compute")
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(document)
    assert document["channels"]["server"]["address"] == "compute.{server}"
    build = document["components"]["messages"]["build"]["payload"]["properties"]["args"]
    assert build["required"] == ["server"]
    assert build["properties"]["server"] == {
        "$ref": "#/components/schemas/steward-contracts.Server"
    }
    assert build["properties"]["retries"] == {"type": "integer"}
    server = document["components"]["schemas"]["steward-contracts.Server"]
    assert server["properties"]["nova_object.data"]["properties"]["tags"]["description"] == (
        "since version 1.1"
    )
    broken = json.loads(json.dumps(document))
    broken["operations"]["build"]["action"] = "listen"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(broken)


def write_service(directory: Path, module: str, retries: str, version: str) -> None:
    (directory / f"{module}.py").write_text(
        textwrap.dedent(f"""
            from typing import ClassVar
            from steward import Manager, RequestContext
            from steward.rpc import Target

            class Api(Manager):
                target: ClassVar[Target] = Target(version="{version}")

                async def build(self, context: RequestContext, retries: {retries}) -> None:
                    return None
        """)
    )


def test_api_check_fails_on_a_change_without_a_bump_and_update_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    contract_file = tmp_path / "contract.json"
    write_service(tmp_path, "svc_contract", "int", "1.0")
    written = runner.invoke(
        app, ["api", "check", str(contract_file), "svc_contract:Api", "--update"]
    )
    assert written.exit_code == 0, written.output
    checked = runner.invoke(app, ["api", "check", str(contract_file), "svc_contract:Api"])
    assert checked.exit_code == 0, checked.output
    assert "the code matches" in checked.output

    monkeypatch.delitem(sys.modules, "svc_contract")
    write_service(tmp_path, "svc_contract", "str", "1.0")
    failed = runner.invoke(app, ["api", "check", str(contract_file), "svc_contract:Api"])
    assert failed.exit_code == 1
    assert "changed without a version bump" in failed.output
    assert "retries: int" in failed.output
    assert "retries: str" in failed.output

    monkeypatch.delitem(sys.modules, "svc_contract")
    write_service(tmp_path, "svc_contract", "str", "1.1")
    bumped = runner.invoke(app, ["api", "check", str(contract_file), "svc_contract:Api"])
    assert bumped.exit_code == 0, bumped.output
    assert "behind the code" in bumped.output


def test_api_export_writes_the_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_service(tmp_path, "svc_export", "int", "2.0")
    out = tmp_path / "api.json"
    result = runner.invoke(
        app, ["api", "export", "svc_export:Api", "--topic", "builder", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["info"]["version"] == "2.0"
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(document)
