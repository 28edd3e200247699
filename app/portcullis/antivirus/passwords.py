"""Passwords for encrypted attachments, taken from the message that carries them.

Worms and malspam send a password-protected zip (so scanners cannot look inside) and tell
the victim the password in the text: "Password: 34512", "the archive password is
'inv2024'".  The recipient can open it, so the gateway can too: every word of the visible
text is a candidate, words right after a password keyword first.  Bounded: a few dozen
candidates, each tried cheaply against an archive's password check.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from email.message import Message

from portcullis.mime import decoded_header, part_text, walk

MAX_CANDIDATES = 64
MAX_TEXT = 64 * 1024          # characters of each text part looked at
MAX_LENGTH = 40               # longer "words" are not passwords anyone types

_KEYWORDS = re.compile(
    r"(?:password|passwort|passwd|pass|pwd|kennwort|contrase(?:n|ñ)a|senha|mot de passe|"
    r"parola|wachtwoord|hasło|haslo|lösenord|salasana|пароль|密码|密碼|パスワード|code|key|pw)"
    # Possessive blanks: three runs that may share one blank run cost its length cubed.
    r"\s*+(?:is|ist|est|es|:|=|-|\u2013|\u2014)?\s*+[:=]?\s*+(\S+)", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]{0,2000}>")
_QUOTES = "\"'`\u00ab\u00bb\u201c\u201d\u2018\u2019\u201e<>()[]{}*"
_TRAILING = ".,;:!?"


def candidates(message: Message) -> list[str]:
    """Candidate passwords from the subject and the text parts, most likely first."""
    texts = [decoded_header(message, "Subject")]
    for _, part in walk(message):
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_filename():
            continue   # an attached text file is not what the recipient reads
        text = part_text(part, MAX_TEXT)
        if part.get_content_subtype() == "html":
            text = html.unescape(_TAGS.sub(" ", text))
        texts.append(text)
    return _ordered(texts)


def _ordered(texts: Iterable[str]) -> list[str]:
    first: list[str] = []
    rest: list[str] = []
    for text in texts:
        first += (m.group(1) for m in _KEYWORDS.finditer(text))
        rest += text.split()
    found: dict[str, None] = {}
    for word in first + rest:
        for variant in _variants(word):
            if 0 < len(variant) <= MAX_LENGTH and variant not in found:
                found[variant] = None
                if len(found) >= MAX_CANDIDATES:
                    return list(found)
    return list(found)


def _variants(word: str) -> list[str]:
    """The word as written, and with the sentence's punctuation and quotes peeled off
    (``'Inv-2024!'.`` → ``Inv-2024!``); passwords may end in punctuation themselves."""
    found = [word]
    for sentence in (word, word.rstrip(".,;:")):
        for quoted in (sentence, sentence.strip(_QUOTES)):
            for variant in (quoted, quoted.rstrip(_TRAILING)):
                if variant not in found:
                    found.append(variant)
    return found
