"""Typed values out of JSON bodies and forms (the web layer's parsing; the domain gets ints/bools)."""
from __future__ import annotations

import pytest

from bot.errors import InvalidInput
from bot.web.request_fields import flag, optional_text, optional_whole_number, whole_number


@pytest.mark.parametrize("value, expected", [(0, 0), (12, 12), ("12", 12), (" 7 ", 7)])
def test_whole_numbers_from_json_or_a_form(value: object, expected: int) -> None:
    assert whole_number(value, "index") == expected


@pytest.mark.parametrize("value", ["0.5", "-1", "", "twelve", True, False, None, 0.0, 1.5, [], {}])
def test_anything_else_is_refused_with_the_field_named(value: object) -> None:
    # moved from the domain's test of pick: a text, a bool, null or a float is never an index
    with pytest.raises(InvalidInput, match="'index' must be a whole number") as error:
        whole_number(value, "index")
    assert error.value.details == {"field": "index"}


def test_a_json_only_number_refuses_a_text() -> None:
    with pytest.raises(InvalidInput, match="'index' must be"):
        whole_number("1", "index", texts=False)
    assert whole_number(1, "index", texts=False) == 1


def test_an_optional_number_may_be_missing() -> None:
    assert optional_whole_number(None, "window_days") is None
    assert optional_whole_number("  ", "window_days") is None
    assert optional_whole_number("14", "window_days") == 14
    with pytest.raises(InvalidInput, match="window_days"):
        optional_whole_number("two weeks", "window_days")


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), (None, False), (0, False), (1, True),
                                             ("on", True), ("yes", True), ("1", True), ("", False), ("off", False)])
def test_flags_from_json_or_a_form(value: object, expected: bool) -> None:
    assert flag(value, "include_contacted") is expected


@pytest.mark.parametrize("value", ["maybe", 2, 0.5, []])
def test_a_flag_is_true_or_false(value: object) -> None:
    with pytest.raises(InvalidInput, match="'include_contacted' must be true or false"):
        flag(value, "include_contacted")


def test_a_text_field_is_a_string_or_missing() -> None:
    assert optional_text("hoi", "text") == "hoi" and optional_text(None, "text") is None
    for value in (5, ["hoi"], {"text": "hoi"}, True):
        with pytest.raises(InvalidInput, match="'text' must be a string") as error:
            optional_text(value, "text")
        assert error.value.details == {"field": "text"}
