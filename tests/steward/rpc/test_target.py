from __future__ import annotations

import dataclasses

import pytest

from steward.errors import InvalidTarget
from steward.rpc import Target
from steward.rpc.target import parse_version, version_is_compatible


def test_defaults_and_positional_order_follow_oslo() -> None:
    target = Target("compute", "host1")
    assert (target.topic, target.server, target.namespace) == ("compute", "host1", None)
    assert target.version == "1.0"
    assert target.fanout is False
    assert target.exchange is None


def test_target_is_frozen_hashable_and_replaceable() -> None:
    target = Target("compute", version="5.0")
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.topic = "volume"  # type: ignore[misc]
    assert hash(target) == hash(Target("compute", version="5.0"))
    moved = target.replace(server="h2")
    assert moved.server == "h2"
    assert target.server is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"topic": "two words"}, "`topic` must be a non-empty name", id="space"),
        pytest.param({"topic": ""}, "`topic` must be a non-empty name", id="empty"),
        pytest.param({"server": "a/b"}, "`server` must be a non-empty name", id="slash"),
        pytest.param({"version": "1"}, "'MAJOR.MINOR'", id="no-minor"),
        pytest.param({"version": "1.0.1"}, "'MAJOR.MINOR'", id="three-parts"),
        pytest.param({"version": "01.0"}, "'MAJOR.MINOR'", id="leading-zero"),
        pytest.param({"fanout": "yes"}, "`fanout` must be True or False", id="fanout"),
        pytest.param({"namespace": 3}, "`namespace` must be a string", id="namespace"),
    ],
)
def test_bad_fields_raise_invalid_target(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidTarget, match=message):
        Target(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("implemented", "requested", "compatible"),
    [
        ("1.3", "1.2", True),
        ("1.3", "1.3", True),
        ("1.3", "1.4", False),
        ("2.0", "1.9", False),
        ("1.10", "1.9", True),
    ],
)
def test_version_compatibility_is_same_major_and_enough_minor(
    implemented: str, requested: str, compatible: bool
) -> None:
    assert version_is_compatible(implemented, requested) is compatible


def test_parse_version() -> None:
    assert parse_version("12.34") == (12, 34)
