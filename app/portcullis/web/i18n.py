"""The message catalogue: English text is the message id, other languages map it.

``locale/en.json`` lists every message the UI shows (kept complete by a test and by
``python -m portcullis.web.i18n``, which prints the catalogue extracted from the code and
templates).  To add a language, copy it to ``locale/<code>.json`` and translate the
values; a message missing from a translation falls back to English.  The language is
chosen from the browser's Accept-Language header.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import sys
from pathlib import Path

from portcullis.numbers import NumberError, parse_number

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "en"

# _('text') or _("text") with a literal first argument, in templates and page code.
_MSGID_RE = re.compile(r"""\b_\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""")


class Catalogue:
    """One language's messages, falling back to English."""

    def __init__(self, language: str, messages: dict[str, str]) -> None:
        self.language = language
        self.messages = messages

    def gettext(self, msgid: str, /, **params: object) -> str:
        text = self.messages.get(msgid) or msgid
        if params:
            try:
                return text.format_map(params)
            except (KeyError, ValueError, IndexError):
                return msgid.format_map(params)
        return text


@functools.cache
def languages() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in LOCALE_DIR.glob("*.json")))


@functools.cache
def catalogue(language: str) -> Catalogue:
    if language not in languages():
        language = DEFAULT
    messages = json.loads((LOCALE_DIR / f"{language}.json").read_text(encoding="utf-8"))
    if language != DEFAULT:
        messages = catalogue(DEFAULT).messages | {k: v for k, v in messages.items() if v}
    return Catalogue(language, messages)


def negotiate(accept_language: str) -> Catalogue:
    """The best catalogue for an Accept-Language header (``de-CH, de;q=0.9, en;q=0.5``)."""
    choices: list[tuple[float, str]] = []
    for item in accept_language.split(",")[:20]:
        tag, _, q = item.strip().partition(";q=")
        try:
            # RFC 9110's qvalue: 0 to 1 ("q=nan" or "q=inf" is no weight).
            weight = parse_number(q, float, name="q", minimum=0, maximum=1) if q else 1.0
        except NumberError:
            continue
        choices.append((weight, tag.strip().lower()))
    available = languages()
    for _weight, tag in sorted(choices, key=lambda c: -c[0]):
        for candidate in (tag, tag.split("-")[0]):
            if candidate in available:
                return catalogue(candidate)
    return catalogue(DEFAULT)


def extract(paths: list[Path]) -> list[str]:
    """Every literal message id used in these files, in order of first use."""
    found: dict[str, None] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            found.update(dict.fromkeys(_python_msgids(text)))
            continue
        for match in _MSGID_RE.finditer(text):
            quote = "'" if match.group(1) is not None else '"'
            raw = match.group(1) if match.group(1) is not None else match.group(2)
            found[ast.literal_eval(quote + raw + quote)] = None
    return list(found)


def _python_msgids(source: str) -> list[str]:
    """``_("...")`` and ``ctx._("...")`` calls in Python code, read with ``ast`` so a
    message split over lines ("a" "b", joined by Python) is taken whole."""
    calls = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
             and node.args and isinstance(node.args[0], ast.Constant)
             and isinstance(node.args[0].value, str)
             and (getattr(node.func, "id", None) == "_"
                  or getattr(node.func, "attr", None) == "_")]
    calls.sort(key=lambda node: (node.lineno, node.col_offset))
    return [node.args[0].value for node in calls]


def source_files() -> list[Path]:
    base = Path(__file__).parent
    return sorted([*base.glob("*.py"), *base.glob("pages/*.py"), *base.glob("views/*.tpl")])


def main() -> int:
    """Print the English catalogue extracted from the sources (to update en.json)."""
    current = json.loads((LOCALE_DIR / f"{DEFAULT}.json").read_text(encoding="utf-8"))
    merged = {msgid: current.get(msgid, msgid) for msgid in extract(source_files())}
    json.dump(merged, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
