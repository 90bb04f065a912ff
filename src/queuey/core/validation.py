"""Parameter checks that report errors in the original Queuey's (colander's) words.

Every ``check_*`` function records a message under the field's key in an :class:`Errors`
collector and returns None instead of raising, so one response can name every bad field.
:class:`Errors`' typed getters wrap them for parsers: they return a value of the field's type
whatever happens (a stand-in when the field is bad), and :meth:`Errors.raise_if_any` reports
every bad field at once before any stand-in is used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from queuey.core.errors import InvalidRequest

# An integer as text: ASCII digits only (str.isdigit() also takes "²", which int() refuses).
_INTEGER = re.compile(r"\s*([+-]?)0*([0-9]+)\s*")
# Longer runs of digits are out of any range; int() of thousands of digits would also raise.
_MAX_DIGITS = 30

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class Errors(dict[str, str]):
    """Field errors collected while validating one request."""

    def raise_if_any(self) -> None:
        if self:
            raise InvalidRequest(self)

    def integer(
        self, field: str, value: object, default: int, minimum: int, maximum: int | None = None
    ) -> int:
        """:func:`check_int` with a default; ``default`` stands in for a bad value."""
        number = check_int(self, field, value, default, minimum, maximum)
        return default if number is None else number

    def required_integer(
        self, field: str, value: object, minimum: int, maximum: int | None = None
    ) -> int:
        """:func:`check_int` of a field without a default; ``minimum`` stands in for a missing
        or bad value."""
        number = check_int(self, field, value, None, minimum, maximum)
        return minimum if number is None else number

    def choice(self, field: str, value: object, choices: Sequence[str], default: str) -> str:
        """:func:`check_choice`; ``default`` stands in for a bad value."""
        return check_choice(self, field, value, choices, default) or default

    def boolean(self, field: str, value: object, default: bool) -> bool:
        return check_bool(self, field, value, default)


def comma_items(text: str) -> list[str]:
    """The items of a comma-separated list, stripped, without the empty ones (linear time)."""
    return [item for part in text.split(",") if (item := part.strip())]


def check_int(
    errors: Errors,
    field: str,
    value: object,
    default: int | None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    """An integer from a query/form/header string or a JSON value; ``None``/"" means default."""
    if value is None or value == "":
        if default is None:
            errors[field] = "Required"
        return default
    number: int
    if isinstance(value, bool):
        errors[field] = f'"{value}" is not a number'
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and (match := _INTEGER.fullmatch(value)):
        sign, digits = match.groups()
        if len(digits) > _MAX_DIGITS:
            bound = "less than minimum" if sign == "-" else "greater than maximum"
            limit = minimum if sign == "-" else maximum
            errors[field] = (
                f"{sign}{digits[:_MAX_DIGITS]}... is {bound} value {limit}"
                if limit is not None
                else f'"{value}" is not a number'
            )
            return None
        number = int(sign + digits)
    else:
        errors[field] = f'"{value}" is not a number'
        return None
    if minimum is not None and number < minimum:
        errors[field] = f"{number} is less than minimum value {minimum}"
        return None
    if maximum is not None and number > maximum:
        errors[field] = f"{number} is greater than maximum value {maximum}"
        return None
    return number


def check_bool(errors: Errors, field: str, value: object, default: bool) -> bool:
    """true/false/1/0/yes/no in any case (JSON booleans too); anything else is an error."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    errors[field] = f'"{value}" is not one of true, false, 1, 0, yes, no'
    return default


def check_choice(
    errors: Errors, field: str, value: object, choices: Sequence[str], default: str | None
) -> str | None:
    if value is None or value == "":
        return default
    if isinstance(value, str) and value in choices:
        return value
    errors[field] = f'"{value}" is not one of {", ".join(choices)}'
    return None
