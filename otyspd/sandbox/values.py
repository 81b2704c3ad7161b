"""Conversions between JSON values, SQLite storage and the OWS wire format.

Storage: strings as TEXT, integers and booleans as INTEGER, floats as REAL,
dates as ``YYYY-MM-DD`` TEXT, datetimes as UTC epoch seconds (INTEGER) and
collections as JSON TEXT. On the wire datetimes are ``YYYY-MM-DD HH:MM:SS`` in
Europe/Amsterdam time, as the PHP server sends them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
from typing import Any
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
ZERO_DATE = "0000-00-00"
ZERO_DATETIME = "0000-00-00 00:00:00"

_LOCAL = re.compile(
    r"^(\d{4})[-/](\d{2})[-/](\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$"
)
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$"
)


class ValueProblem(ValueError):
    """A value that does not fit its field; the caller names the field."""


def _parse_instant(text: str) -> dt.datetime | None:
    """An aware datetime from ISO-with-offset, or from Amsterdam local text; None if neither."""
    m = _ISO.match(text)
    if m:
        y, mo, d, h, mi, s, tz = m.groups()
        if tz == "Z":
            tzinfo = dt.timezone.utc
        else:
            sign = 1 if tz[0] == "+" else -1
            digits = tz[1:].replace(":", "")
            tzinfo = dt.timezone(
                sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            )
        return dt.datetime(
            int(y), int(mo), int(d), int(h), int(mi), int(s or 0), tzinfo=tzinfo
        )
    m = _LOCAL.match(text)
    if m:
        y, mo, d, h, mi, s = m.groups()
        return dt.datetime(
            int(y),
            int(mo),
            int(d),
            int(h or 0),
            int(mi or 0),
            int(s or 0),
            tzinfo=AMSTERDAM,
        )
    return None


def to_epoch(value: Any) -> int | None:
    """A datetime value as UTC epoch seconds (None for empty, zero dates included)."""
    if value is None or value == "" or value in (ZERO_DATE, ZERO_DATETIME):
        return None
    if not isinstance(value, str):
        raise ValueProblem(
            f"expected a datetime string 'YYYY-MM-DD HH:MM:SS', got {value!r}"
        )
    try:
        instant = _parse_instant(value.strip())
    except ValueError as exc:
        raise ValueProblem(f"{value!r} is not a valid datetime ({exc})") from None
    if instant is None:
        raise ValueProblem(
            f"{value!r} is not a datetime; use 'YYYY-MM-DD HH:MM:SS' (Europe/Amsterdam) "
            "or ISO UTC like '2025-07-31T22:00:00.000Z'"
        )
    return int(instant.timestamp())


def to_date(value: Any) -> str | None:
    """A date value as ``YYYY-MM-DD`` (ISO instants are taken in Amsterdam time)."""
    if value is None or value == "" or value in (ZERO_DATE, ZERO_DATETIME):
        return None
    if not isinstance(value, str):
        raise ValueProblem(f"expected a date string 'YYYY-MM-DD', got {value!r}")
    try:
        instant = _parse_instant(value.strip())
    except ValueError as exc:
        raise ValueProblem(f"{value!r} is not a valid date ({exc})") from None
    if instant is None:
        raise ValueProblem(f"{value!r} is not a date; use 'YYYY-MM-DD'")
    return instant.astimezone(AMSTERDAM).date().isoformat()


_EPOCH = dt.datetime(1970, 1, 1)
_OFFSETS: dict[int, int] = {}


def _amsterdam_offset(value: int) -> int:
    """Amsterdam's UTC offset in seconds at epoch second ``value``.

    Offsets change only on whole UTC hours, so one look-up per hour serves every
    second in it; a page of datetimes then costs a few zone look-ups, not one each.
    """
    hour = value // 3600
    offset = _OFFSETS.get(hour)
    if offset is None:
        instant = dt.datetime.fromtimestamp(hour * 3600, AMSTERDAM)
        offset = _OFFSETS[hour] = int(instant.utcoffset().total_seconds())
    return offset


def format_epoch(value: int | None) -> str | None:
    """UTC epoch seconds as Amsterdam wall-clock text."""
    if value is None:
        return None
    local = _EPOCH + dt.timedelta(seconds=value + _amsterdam_offset(value))
    return local.isoformat(" ")


def to_bool(value: Any) -> int | None:
    """true/false, 1/0, "1"/"0", "true"/"false" as 1/0."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "0", "true", "false"):
        return int(value.strip().lower() in ("1", "true"))
    raise ValueProblem(f"expected a boolean (true/false, 1/0), got {value!r}")


#: SQLite stores integers in 64 bits; anything outside is refused, not overflowed.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
_INTEGER_TEXT = re.compile(r"[ \t\n\r]*-?[0-9]+[ \t\n\r]*")


class OutOfRange(ValueProblem):
    """An integer that does not fit in 64 bits (what SQLite and PHP can hold)."""


def short_repr(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_ascii_digits(text: Any) -> bool:
    """Whether ``text`` is a non-empty string of ASCII digits 0-9 only.

    ``str.isdigit`` also accepts "²" or "٣", which ``int`` refuses or reads
    differently from PHP.
    """
    return isinstance(text, str) and text.isascii() and text.isdigit()


def in_range(value: int) -> int:
    """``value`` if it fits in a 64-bit signed integer, else :class:`OutOfRange`."""
    if not INT_MIN <= value <= INT_MAX:
        raise OutOfRange(
            f"value out of range: {short_repr(value)} does not fit in a 64-bit integer"
        )
    return value


def to_int(value: Any) -> int | None:
    """An integer, or a string of one (ASCII digits, maybe a minus, blanks around); 64 bits."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueProblem(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return in_range(value)
    if isinstance(value, float) and value.is_integer():
        return in_range(int(value))
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        return in_range(int(value))
    raise ValueProblem(f"expected an integer, got {short_repr(value)}")


def php_truthy(value: Any) -> bool:
    """A flag as PHP's boolean cast reads it.

    False: null, false, 0, 0.0, "", "0" and an empty array or object; anything
    else is true, the string "false" included.
    """
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value not in ("", "0")
    if isinstance(value, (list, dict)):
        return bool(value)
    return True


def to_float(value: Any) -> float | None:
    """A finite number, or a numeric string."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueProblem(f"expected a number, got {value!r}")
    number = None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise OutOfRange(
                f"value out of range: {short_repr(value)} is too large for a float"
            ) from None
    elif isinstance(value, str) and "_" not in value:
        with contextlib.suppress(ValueError):
            number = float(value)
    if number is None:
        raise ValueProblem(f"expected a number, got {short_repr(value)}")
    if not math.isfinite(number):
        raise OutOfRange(
            f"value out of range: {short_repr(value)} is not a finite number"
        )
    return number


def to_text(value: Any) -> str | None:
    """A string; integers are accepted and turned into text (PHP does the same)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueProblem(f"expected a string, got {value!r}")


def to_storage(type_: str, value: Any) -> Any:
    """Convert a JSON value for a scalar field of ``type_`` to its stored form."""
    if type_ in ("string", "text"):
        return to_text(value)
    if type_ == "integer":
        return to_int(value)
    if type_ == "float":
        return to_float(value)
    if type_ == "boolean":
        return to_bool(value)
    if type_ == "date":
        return to_date(value)
    if type_ == "datetime":
        return to_epoch(value)
    raise ValueProblem(f"cannot store a value of type {type_}")
