from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from steward.redact import SHOWN_PREFIX, shorten


def test_shorten_keeps_a_short_string_as_it_is() -> None:
    assert shorten("reboot_instance") == "reboot_instance"


def test_shorten_cuts_a_long_string_to_a_prefix_and_its_length() -> None:
    assert shorten("x" * 5000, limit=8) == "xxxxxxxx… (5000 characters)"


@given(st.text(max_size=5000), st.integers(min_value=1, max_value=200))
def test_shorten_is_bounded_by_its_limit_and_keeps_the_prefix(value: str, limit: int) -> None:
    shown = shorten(value, limit)
    assert len(shown) <= limit + len(f"… ({len(value)} characters)")
    assert shown.startswith(value[:limit])
    assert (shown == value) == (len(value) <= limit)


def test_the_default_limit_is_short() -> None:
    assert len(shorten("m" * 10 * 1024 * 1024)) < SHOWN_PREFIX + 32
