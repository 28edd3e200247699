"""The Bayes tokenizer and classifier give exactly what they gave before they were made
faster: golden tokens and classifications of varied messages (nine from the SpamAssassin
corpus: list mail, attachments, quoted-printable, HTML with comments, CJK, base64 HTML,
multipart/alternative, links to IP addresses, KOI8-R; and four hostile or unusual
ones), written by the code before the speed-ups; and the rewritten patterns held to
what they replaced (the link patterns also in test_header_readings.py)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import ipaddress
import json
import re
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from portcullis.bayes.classifier import Clue, classify
from portcullis.bayes.database import digest
from portcullis.bayes.engine import strip_envelope_line
from portcullis.bayes.tokenizer import _VALID_IPV4, tokenize
from portcullis.mime import IndexedMessage, parse_message

pytestmark = pytest.mark.reputation

GOLDEN = Path(__file__).parent / "bayes_golden"
_EXPECTED = json.loads((GOLDEN / "golden.json").read_text())
MESSAGES = sorted(_EXPECTED["tokens"])


def _tokens(name: str) -> set[str]:
    return tokenize(parse_message(strip_envelope_line((GOLDEN / name).read_bytes())))


@pytest.mark.parametrize("name", MESSAGES)
def test_tokens_of_a_message_are_the_golden_ones(name):
    assert sorted(_tokens(name)) == _EXPECTED["tokens"][name]


def test_classifications_are_the_golden_ones_to_the_last_bit():
    tokens = {name: _tokens(name) for name in MESSAGES}
    counts: dict[str, tuple[int, int]] = {}
    for name in MESSAGES:
        spam = name.startswith("spam")
        for token in tokens[name]:
            s, h = counts.get(token, (0, 0))
            counts[token] = (s + spam, h + (not spam))
    nspam = sum(name.startswith("spam") for name in MESSAGES)
    for name in MESSAGES:
        result = classify(counts, tokens[name], nspam, len(MESSAGES) - nspam)
        assert result.probability.hex() == _EXPECTED["classify"][name]["probability"], name
        assert [[c.token, c.probability.hex()] for c in result.clues] == \
            _EXPECTED["classify"][name]["clues"], name
        assert all(type(c) is Clue for c in result.clues)
        for spammy in (True, False):
            side = [c.token for c in result.clues if (c.probability > 0.5) == spammy]
            assert result.top(spammy, 4) == side[:4]


def _every_character() -> str:
    return "".join(map(chr, range(sys.maxunicode + 1)))      # lone surrogates included


def test_the_link_patterns_letter_classes_match_what_ignorecase_matched():
    every = _every_character()
    for letter, spelled in (("h", "[hH]"), ("t", "[tT]"), ("p", "[pP]"),
                            ("s", "[sS\u017f]"), ("f", "[fF]"), ("w", "[wW]"),
                            ("r", "[rR]"), ("e", "[eE]"), ("c", "[cC]"), ("a", "[aA]"),
                            ("i", "[iI\u0130\u0131]"), ("o", "[oO]"), ("n", "[nN]")):
        assert re.findall(spelled, every) == re.findall(letter, every, re.IGNORECASE)


def test_the_received_ip_check_accepts_what_ipaddress_accepts():
    octets = [str(i) for i in range(1000)] + [f"{i:02d}" for i in range(100)] + \
        [f"{i:03d}" for i in range(1000)] + ["\u0661", "\u0662\u0665", "\uff11"]
    for octet in octets:
        for position in range(4):
            parts = ["1", "2", "3", "4"]
            parts[position] = octet
            text = ".".join(parts)
            try:
                ipaddress.IPv4Address(text)
                valid = True
            except ValueError:
                valid = False
            assert bool(_VALID_IPV4.fullmatch(text)) is valid, text


def _digest_as_before(tokens: frozenset[str]) -> str:
    hasher = hashlib.sha256()
    for token in sorted(tokens):
        hasher.update(token.encode("utf-8", "surrogatepass"))
        hasher.update(b"\0")
    return hasher.hexdigest()[:32]


# Any code point, lone surrogates and NUL included: the digest keys stored rows.
_ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=12)


@settings(max_examples=3000)
@given(st.frozensets(_ANY_TEXT, max_size=20))
@example(frozenset())
@example(frozenset({""}))
@example(frozenset({chr(0xD800) + chr(0xDC00), chr(0xDFFF)}))   # a pair, a lone one
def test_the_digest_is_the_one_hashed_a_token_at_a_time(tokens):
    assert digest(tokens) == _digest_as_before(tokens)


def _plain_message(content: bytes) -> email.message.Message:
    """The message as the email package's parser makes it: no IndexedMessage anywhere."""
    return email.message_from_bytes(content, policy=email.policy.compat32)


@pytest.mark.parametrize("name", MESSAGES)
def test_tokens_read_through_the_header_index_are_those_read_through_the_policy(name):
    content = strip_envelope_line((GOLDEN / name).read_bytes())
    message = parse_message(content)
    assert isinstance(message, IndexedMessage)
    assert tokenize(message) == tokenize(_plain_message(content))


_HEADER_NAMES = ["Subject", "SUBJECT", "From", "from", "Reply-To", "To", "Cc", "cc",
                 "Received", "received", "Message-ID", "Return-Path", "X-Mailer",
                 "User-Agent", "Organization", "Precedence", "X-Priority", "List-Id",
                 "Importance", "Content-Class", "X-Other"]
_HEADER_VALUE = st.text(st.sampled_from(
    "abc xyz@<>.,;:()[]\"!$'=?-_0123456789\u00e9\u00ff\u0416\u4e2d\t"), max_size=40)


@settings(max_examples=1500)
@given(st.lists(st.tuples(st.sampled_from(_HEADER_NAMES), _HEADER_VALUE), max_size=14),
       st.sampled_from(["utf-8", "latin-1"]))
@example([("Subject", "caf\u00e9 bar"), ("From", "\u00e9 <a@b.c>")], "latin-1")
@example([("Received", "from a.b.c (d [1.2.3.4])"), ("received", "from e.f")], "utf-8")
def test_header_tokens_read_through_the_index_are_those_read_through_the_policy(
        fields, charset):
    # Raw 8-bit header bytes too: compat32 gives those back as Header objects.
    content = b"".join(f"{n}: {v}\n".encode(charset, "replace") for n, v in fields) \
        + b"\nbody words here\n"
    assert tokenize(parse_message(content)) == tokenize(_plain_message(content))
