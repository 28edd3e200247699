"""Reading a number an administrator gave: a form field, a runtime setting, a CLI value.

The one place such text becomes a number.  ``float()`` reads "nan", "inf", "-inf" and
"1e999" (infinity), and each slipped past a range check written as ``value < minimum``
(every comparison with nan is false); ``int()`` of a float drops its fraction.  Here a
value is a finite number of the wanted kind within its bounds, or ``NumberError`` naming
the field and the range it may take.
"""

from __future__ import annotations

import math
from typing import Any


class NumberError(ValueError):
    """A value that is not a number this field takes; the message names the field and
    the range (``name: must be a whole number from 1 to 90, not '91'``)."""


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def allowed(kind: type, minimum: float | None = None, maximum: float | None = None) -> str:
    """What a field takes, in words: "a whole number from 1 to 90"."""
    what = "a whole number" if kind is int else "a finite number"
    if minimum is not None and maximum is not None:
        return f"{what} from {_bound(minimum)} to {_bound(maximum)}"
    if minimum is not None:
        return f"{what} of at least {_bound(minimum)}"
    if maximum is not None:
        return f"{what} of at most {_bound(maximum)}"
    return what


def parse_number(value: Any, kind: type = float, *, name: str,
                 minimum: float | None = None, maximum: float | None = None) -> Any:
    """``value`` (text, or a number read from JSON or TOML) as ``kind`` (int or float),
    finite and within ``minimum``..``maximum`` (inclusive); NumberError otherwise.

    Text may have surrounding blanks; an int field takes whole numbers only ("5", not
    "5.5" or "1e3"); a float field takes what ``float()`` reads, but never nan or an
    infinity.  A bool is no number here (``True`` is 1 to Python, never to an admin).
    """
    if kind not in (int, float):
        raise TypeError(f"parse_number reads int or float, not {kind!r}")

    def refused() -> NumberError:
        return NumberError(f"{name}: must be {allowed(kind, minimum, maximum)}, not {value!r}")

    number: int | float
    if isinstance(value, bool):
        raise refused()
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text) if kind is int else float(text)
        except ValueError:      # also int()'s limit on digits (4300)
            raise refused() from None
    elif isinstance(value, int | float):
        number = value
    else:
        raise refused()
    if kind is float or isinstance(number, float):
        try:
            number = float(number)
        except OverflowError:   # a whole number past a float's range (TOML and JSON set none)
            raise refused() from None
        if not math.isfinite(number):
            raise refused()
    if kind is int and isinstance(number, float):
        if not number.is_integer():
            raise refused()
        number = int(number)
    if (minimum is not None and number < minimum) or \
            (maximum is not None and number > maximum):
        raise refused()
    return number
