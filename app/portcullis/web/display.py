"""Turning values into text for the templates (the templates escape the result)."""

from __future__ import annotations

import time
from typing import Any

_TIME_HINTS = ("time", "date", "when", "at", "started", "finished", "updated", "created",
               "seen", "last", "first")


def looks_like_time(key: str, value: Any) -> bool:
    words = key.lower().replace("-", "_").split("_")
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and 946684800 <= value <= 4102444800 and any(w in _TIME_HINTS for w in words))


def show(value: Any, key: str = "") -> str:
    """A provider's or setting's value as one line of text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if looks_like_time(key, value):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(show(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={show(v, str(k))}" for k, v in value.items())
    return str(value)


# Bidirectional controls show text in another order than it is: "invoice\u202efdp.exe"
# reads as "invoiceexe.pdf".  Where an administrator judges a message by a name they are
# shown as their code points.
_BIDI_CONTROLS = {ord(c): f"\\u{ord(c):04x}" for c in
                  "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"}


def reveal_bidi(text: str) -> str:
    """``text`` with its bidirectional control characters written out (``\\u202e``)."""
    return text.translate(_BIDI_CONTROLS)


def size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def duration(seconds: float | None) -> str:
    """Seconds as a short human duration; None (no expiry) as an empty string."""
    if seconds is None:
        return ""
    minutes = max(0, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def percent(share: Any) -> str:
    """A share between 0 and 1 as a percentage (``0.98`` → ``98%``); other values as is."""
    if isinstance(share, bool) or not isinstance(share, int | float):
        return show(share)
    return f"{share * 100:.3g}%"
