"""Quick readings of message headers must agree with the email package's on every input:
the plain-address reader (``header_addresses``/``header_address``), the encoded-word
shortcut of ``decoded_header`` and the link patterns written for speed (a first-letter
lookahead, or each letter's cases spelt out) against their plain forms."""

import re
from email.header import decode_header, make_header
from email.message import Message
from email.utils import collapse_rfc2231_value, getaddresses, parseaddr

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from portcullis.addresses import _PLAIN_ADDRESS, header_address, header_addresses
from portcullis.antivirus.archives import _part_names
from portcullis.bayes import tokenizer
from portcullis.checks import uribl
from portcullis.mime import decoded_header, filename

pytestmark = pytest.mark.reputation

# Pieces of address headers, their near misses (quoting, comments, groups, literals, stray
# dots, commas and blanks of every kind) and text that is not an address at all.
PIECES = st.sampled_from([
    "<", ">", "@", ".", "..", ",", ", ", " ", "  ", "\t", "\r\n ", "\n", "\x0b", "\xa0",
    "\u2003", "\x00", "(", ")", '"', "\\", "[", "]", ":", ";", "a", "Bob", "x.y", "z-9",
    "+tag", "!#$%&'*/=?^_`{|}~", "é", "Jürgen", "example.com", "-x", "x-",
    "<a@b.c>", "Bob <b@c.d>", "a@b.c", "undisclosed-recipients:;", "[192.0.2.1]",
    "=?utf-8?q?J=C3=BCrgen?=",
])
TEXTS = st.lists(PIECES, max_size=10).map("".join)


@settings(max_examples=3000)
@given(values=st.lists(TEXTS, max_size=3))
@example(values=["Toorop <toorop@cyborgnation.org>"])
@example(values=["  John  Q. Public\r\n <x.y@z-w.org> "])
@example(values=["A <a@b>, B <b@c>", "c@d"])
@example(values=["a@b,"])
@example(values=["a@b,,c@d"])
@example(values=["Name<a@b>"])
@example(values=["a\u2003b <c@d>"])
@example(values=["a..b@c.d"])
@example(values=[""])
def test_address_lists_read_as_the_email_package_reads_them(values):
    assert header_addresses(values) == getaddresses(values)


@settings(max_examples=3000)
@given(value=TEXTS)
@example(value="Toorop <toorop@cyborgnation.org>")
@example(value="a@b, c@d")
@example(value="x")
def test_one_address_reads_as_parseaddr_reads_it(value):
    assert header_address(value) == parseaddr(value)


@pytest.mark.parametrize("value", ["Toorop <toorop@cyborgnation.org>", "a.b@c.example",
                                   "<a@b.c>", "Jürgen Müller\r\n <j@x.de>"])
def test_everyday_addresses_take_the_quick_reading(value):
    assert _PLAIN_ADDRESS.fullmatch(value)


@settings(max_examples=2000)
@given(value=TEXTS)
@example(value="=?utf-8?q?J=C3=BCrgen?= <j@x.de>")
@example(value="plain\r\n folded")
def test_decoded_header_shortcut_gives_what_decoding_gives(value):
    message = Message()
    message["Subject"] = value
    try:
        expected = str(make_header(decode_header(str(message["Subject"]))))
    except Exception:      # decoded_header's own fallback reads word by word (test_bayes)
        assume(False)
    assert decoded_header(message, "Subject") == expected


# Text with links and near misses, in every case (U+017F, the long s, folds to s when
# case is ignored; U+0130 and U+0131, dotted and dotless i, to i).
LINK_TEXT = st.lists(st.sampled_from([
    "http://", "https://", "HTTPS://", "http\u017f://", "ftp://", "FtP://", "www.", "WWW.",
    "ww.", "htp://", "href=", "HREF = '", "src=\"", "\u017frc=", "action=", "ACT\u0130ON=",
    "act\u0131on=", "a", " ", "\n",
    "example.com", "/path?x=1", "<", ">", "\"", "'", "user@", "é", "hxxp://", ".",
]), max_size=12).map("".join)


def _without_lookahead(pattern: re.Pattern[str]) -> re.Pattern[str]:
    prefix = re.match(r"\(\?=\[[a-z]+\]\)", pattern.pattern)
    assert prefix, "the pattern starts with its first-letter lookahead"
    return re.compile(pattern.pattern[prefix.end():], pattern.flags)


@settings(max_examples=2000)
@given(text=LINK_TEXT)
def test_link_patterns_find_what_they_found_without_the_lookahead(text):
    plain_tokenizer = (   # its patterns spell the letters' cases out instead of the flag
        (tokenizer._URL, re.compile(r"(?:(?:https?|ftp)://|www\.)[^\s<>\"'()\[\]{}]{1,500}",
                                    re.IGNORECASE)),
        (tokenizer._HREF, re.compile(r"""(?:href|src|action)\s*=\s*"""
                                     r"""(?:"([^"]{0,1000})"|'([^']{0,1000})'|([^"'\s>]{1,500}))""",
                                     re.IGNORECASE)))
    for pattern, plain in (*plain_tokenizer, (uribl._URL, _without_lookahead(uribl._URL))):
        assert [m.span() for m in pattern.finditer(text)] == \
            [m.span() for m in plain.finditer(text)]
        assert pattern.findall(text) == plain.findall(text)


# Content-Type and Content-Disposition values with and without file names, spelt every way
# (RFC 2231 continuations and charsets, encoded words, odd case, stray quoting).
PARAMETER_PIECES = st.sampled_from([
    "text/plain", "application/pdf", "attachment", "inline", ";", "; ", " ", "=", '"',
    "name", "NAME", "filename", "FileName", "name*0", "name*1", "filename*", "*=utf-8''",
    "nam", "e", "x.pdf", "a%20b.doc", "=?utf-8?b?w6kucGRm?=", "charset=utf-8", "\r\n ",
    "é", "\u212a", "\u0130", "(", ")",
])
PARAMETERS = st.lists(PARAMETER_PIECES, max_size=10).map("".join)


@settings(max_examples=2000)
@given(content_type=PARAMETERS, disposition=st.none() | PARAMETERS)
@example(content_type='application/pdf; name="x.pdf"', disposition=None)
@example(content_type="text/plain", disposition="attachment; filename*=utf-8''a%20b.pdf")
@example(content_type="text/plain; NAME*0=a; name*1=.pdf", disposition=None)
@example(content_type=";name*0*=utf-8''", disposition=None)   # an empty RFC 2231 name
def test_a_file_name_needs_name_in_the_headers(content_type, disposition):
    """What lets ``_part_names`` skip parsing the parameters of most text parts."""
    part = Message()
    part["Content-Type"] = content_type
    if disposition is not None:
        part["Content-Disposition"] = disposition
    try:
        value = part.get_param("name", "", header="content-type")
        # An RFC 2231 value is a (charset, language, text) tuple, truthy when text is empty.
        name = collapse_rfc2231_value(value) if value else ""
    except Exception:      # malformed parameters: _part_names takes no name from them
        name = ""
    if filename(part) or name:
        assert _part_names(part)
        assert any("name" in str(part.get(header, "")).lower()
                   for header in ("Content-Disposition", "Content-Type"))
