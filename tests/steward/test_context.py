from __future__ import annotations

import asyncio
import datetime
import re
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from oslo_context import context as oslo_context

from steward.context import (
    RequestContext,
    bind,
    generate_request_id,
    get_admin_context,
    get_current,
)

REQUEST_ID = re.compile(
    r"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)


def test_request_id_is_generated_in_oslo_form_when_absent() -> None:
    first, second = RequestContext(), RequestContext()
    assert REQUEST_ID.match(first.request_id)
    assert first.request_id != second.request_id
    assert REQUEST_ID.match(generate_request_id())


def test_to_dict_carries_every_key_oslo_context_writes() -> None:
    ours = RequestContext(user_id="u1", project_id="p1", roles=["admin"], is_admin=True)
    theirs = oslo_context.RequestContext(
        user_id="u1", project_id="p1", roles=["admin"], is_admin=True
    )
    ours_dict = ours.to_dict()
    theirs_dict = theirs.to_dict()
    assert set(theirs_dict) <= set(ours_dict)
    for key in set(theirs_dict) - {"request_id"}:
        assert ours_dict[key] == theirs_dict[key], key


def test_oslo_context_reads_what_steward_writes() -> None:
    ours = RequestContext(
        user_id="u1",
        project_id="p1",
        domain_id="d1",
        user_domain_id="ud",
        project_domain_id="pd",
        roles=["member", "reader"],
        request_id="req-11111111-2222-4333-8444-555555555555",
        global_request_id="req-99999999-2222-4333-8444-555555555555",
        auth_token="tok",
        read_only=True,
        show_deleted=True,
        resource_uuid="r1",
        system_scope="all",
    )
    theirs = oslo_context.RequestContext.from_dict(ours.to_dict())
    assert theirs.user_id == "u1"
    assert theirs.project_id == "p1"
    assert theirs.domain_id == "d1"
    assert theirs.user_domain_id == "ud"
    assert theirs.project_domain_id == "pd"
    assert theirs.roles == ["member", "reader"]
    assert theirs.request_id == ours.request_id
    assert theirs.global_request_id == ours.global_request_id
    assert theirs.auth_token == "tok"
    assert theirs.read_only is True
    assert theirs.show_deleted is True
    assert theirs.resource_uuid == "r1"
    assert theirs.system_scope == "all"
    assert theirs.to_dict()["user_identity"] == ours.user_identity == "u1 p1 d1 ud pd"


def test_steward_reads_what_oslo_context_writes() -> None:
    theirs = oslo_context.RequestContext(
        user_id="u1",
        project_id="p1",
        domain_id="d1",
        roles=["admin"],
        is_admin=True,
        request_id="req-abc",
        global_request_id="req-def",
        auth_token="tok",
    )
    ours = RequestContext.from_dict(theirs.to_dict())
    assert (ours.user_id, ours.project_id, ours.domain_id) == ("u1", "p1", "d1")
    assert ours.roles == ["admin"]
    assert ours.is_admin is True
    assert ours.request_id == "req-abc"
    assert ours.global_request_id == "req-def"
    assert ours.auth_token == "tok"
    assert ours.extra == {}, "oslo's own keys must not be mistaken for unknown ones"


def test_round_trip_preserves_every_field() -> None:
    original = RequestContext(
        user_id="u",
        project_id="p",
        user_name="alice",
        project_name="demo",
        roles=["a", "b"],
        is_admin=True,
        is_admin_project=False,
        read_deleted="yes",
        timestamp=datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC),
        auth_token="secret",
        extra={"instance_lock_checked": True, "remote_address": "10.0.0.1"},
    )
    assert RequestContext.from_dict(original.to_dict()) == original


def test_unknown_keys_are_kept_and_sent_on() -> None:
    values = RequestContext(user_id="u").to_dict()
    values |= {"service_catalog": [{"type": "volume"}], "traceparent": "00-abc-def-01"}
    context = RequestContext.from_dict(values)
    assert context.extra == {
        "service_catalog": [{"type": "volume"}],
        "traceparent": "00-abc-def-01",
    }
    again = context.to_dict()
    assert again["service_catalog"] == [{"type": "volume"}]
    assert again["traceparent"] == "00-abc-def-01"


def test_from_dict_accepts_nova_and_legacy_keys() -> None:
    assert RequestContext.from_dict({"tenant": "t1", "user": "u1"}).project_id == "t1"
    assert RequestContext.from_dict({"user_id": "u2", "project_id": "p2"}).user_id == "u2"
    nova = RequestContext.from_dict({"timestamp": "2026-11-25T19:41:00.117678"})
    assert nova.timestamp == datetime.datetime(2026, 11, 25, 19, 41, 0, 117678, tzinfo=datetime.UTC)


def test_from_dict_treats_null_as_default() -> None:
    context = RequestContext.from_dict(
        {"request_id": None, "roles": None, "is_admin": None, "read_deleted": None}
    )
    assert REQUEST_ID.match(context.request_id)
    assert context.roles == []
    assert context.is_admin is False
    assert context.read_deleted == "no"


def test_bad_values_are_rejected_clearly() -> None:
    with pytest.raises(
        ValueError, match="`read_deleted` must be one of no, yes, only, got 'maybe'"
    ):
        RequestContext(read_deleted="maybe")
    with pytest.raises(ValueError, match="`timestamp` must be an ISO 8601 time"):
        RequestContext.from_dict({"timestamp": "yesterday"})


def test_auth_token_never_appears_in_repr() -> None:
    context = RequestContext(user_id="u", auth_token="very-secret-token")
    assert "very-secret-token" not in repr(context)
    assert "very-secret-token" not in str(context)


def test_elevated_keeps_request_id_and_adds_admin() -> None:
    context = RequestContext(user_id="u", roles=["member"])
    admin = context.elevated(read_deleted="yes")
    assert admin.is_admin is True
    assert admin.roles == ["member", "admin"]
    assert admin.request_id == context.request_id
    assert admin.read_deleted == "yes"
    assert context.is_admin is False


def test_admin_context() -> None:
    context = get_admin_context()
    assert context.is_admin is True
    assert context.user_id is None
    assert "admin" in context.roles


async def test_current_context_follows_tasks_and_threads() -> None:
    context = RequestContext(user_id="u")
    assert get_current() is None
    seen: dict[str, Any] = {}

    def in_thread() -> None:
        seen["thread"] = get_current()
        seen["thread_name"] = threading.current_thread().name

    async def in_task() -> None:
        seen["task"] = get_current()

    with bind(context):
        assert get_current() is context
        await asyncio.to_thread(in_thread)
        await asyncio.create_task(in_task())
    assert get_current() is None
    assert seen["thread"] is context
    assert seen["task"] is context


def test_bind_restores_previous_context_on_error() -> None:
    outer, inner = RequestContext(), RequestContext()
    with bind(outer):
        with pytest.raises(RuntimeError), bind(inner):
            raise RuntimeError
        assert get_current() is outer


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    user_id=st.none() | st.text(max_size=20),
    project_id=st.none() | st.text(max_size=20),
    roles=st.lists(st.text(max_size=10), max_size=4),
    is_admin=st.booleans(),
    extra=st.dictionaries(st.text(min_size=1, max_size=12).map(lambda k: f"x_{k}"), json_values),
)
def test_round_trip_property(
    user_id: str | None,
    project_id: str | None,
    roles: list[str],
    is_admin: bool,
    extra: dict[str, Any],
) -> None:
    context = RequestContext(
        user_id=user_id, project_id=project_id, roles=roles, is_admin=is_admin, extra=extra
    )
    assert RequestContext.from_dict(context.to_dict()) == context


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"is_admin": "yes"}, "`is_admin` must be true or false, got str 'yes'", id="a"
        ),
        pytest.param({"is_admin": 1}, "`is_admin` must be true or false, got int 1", id="a-int"),
        pytest.param({"read_only": 1}, "`read_only` must be true or false, got int 1", id="ro"),
        pytest.param({"read_only": "false"}, "`read_only` must be true or false", id="ro-str"),
        pytest.param({"is_admin_project": []}, "`is_admin_project` must be true or", id="ap"),
        pytest.param({"roles": "admin"}, "`roles` must be a list of strings, got 'admin'", id="r"),
        pytest.param({"roles": ["admin", 1]}, "`roles` must be a list of strings", id="r-int"),
    ],
)
def test_mistyped_flags_and_roles_are_refused_not_taken_for_their_truth(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        RequestContext.from_dict(values)


def test_a_long_mistyped_flag_is_shortened_in_the_error() -> None:
    with pytest.raises(TypeError) as caught:
        RequestContext.from_dict({"is_admin": "y" * 10_000})
    assert len(str(caught.value)) < 200
