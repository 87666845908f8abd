"""Reading typed values out of a request's JSON body or form: the web layer's job, so the
domain gets ``int``, ``bool`` and ``str`` (and keeps its own rules: ranges, lengths).

Each helper raises :class:`~bot.errors.InvalidInput` naming the field when the value has the
wrong shape; a form's text ``"12"`` and JSON's ``12`` read the same.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

from bot.errors import InvalidInput

TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


MAX_WHOLE_NUMBER = 2 ** 31 - 1  # PostgreSQL's integer


def whole_number(value: Any, field: str, what: str = "a whole number", texts: bool = True) -> int:
    """``12`` or (unless ``texts`` is false: a JSON number only) ``"12"`` → 12; never a bool,
    a float or a negative text."""
    number: Optional[int] = None
    if texts and isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())  # (ASCII only: "²".isdigit() is true, int("²") fails)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    if number is None:
        raise InvalidInput(f"'{field}' must be {what}, not {str(value)[:40]!r}", field=field)
    if number > MAX_WHOLE_NUMBER:  # beyond any id or count the store holds (and its integer columns)
        raise InvalidInput(f"'{field}' must be {what} of at most {MAX_WHOLE_NUMBER}", field=field)
    return number


def optional_whole_number(value: Any, field: str, what: str = "a whole number") -> Optional[int]:
    """:func:`whole_number`, with ``None`` or an empty text as "not given"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return whole_number(value, field, what)


def optional_text(value: Any, field: str) -> Optional[str]:
    """A JSON string (or nothing); a number, list or object where a text belongs is refused.
    (Whether the text is long enough, or too long, is the domain's rule.)"""
    if value is None or isinstance(value, str):
        return value
    raise InvalidInput(f"'{field}' must be a string, not {type(value).__name__}", field=field)


def texts(body: Mapping[str, Any], *fields: str) -> Tuple[Optional[str], ...]:
    """:func:`optional_text` of each of ``fields`` in a JSON body, in order."""
    return tuple(optional_text(body.get(field), field) for field in fields)


OVERRIDE_FIELD = "override_personal_data"  # publish a public reply with personal data, knowingly


def flag(value: Any, field: str) -> bool:
    """``true``/``false`` in JSON, or a form's ``on``/``yes``/``1``/``0``/``""``; missing is false."""
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
        return value.strip().lower() in TRUE
    raise InvalidInput(f"'{field}' must be true or false", field=field)
