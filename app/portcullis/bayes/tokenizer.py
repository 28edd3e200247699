"""Turning a message into the tokens the classifier counts.

Tokens come from the decoded subject, the text and HTML parts (HTML stripped, entities
undone), the URLs in them and their domains, attachment types and names, and a selection
of headers a gateway really sees at SMTP time.  Collection artefacts (``X-Keywords``,
``Status``, ``Delivered-To``) and our own ``X-Spam-*`` headers are never looked at, and
neither is ``Date:`` (a message's age says nothing once a corpus is years old).

Words are split on white space with punctuation trimmed, lower-cased and NFKC-normalised,
so the classifier works in any language; scripts written without spaces (CJK, Thai) give
overlapping character bigrams instead.  Work is bounded: at most ``MAX_TEXT`` characters
per part (of an HTML part, of what a browser shows: its comments, scripts and style
sheets, skipped in one linear scan of its first ``MAX_HTML_SOURCE`` bytes, spend none of
it), and the first ``MAX_TOKENS`` distinct tokens of a message (headers first, then the
parts in order) are kept.
"""

from __future__ import annotations

import html
import ipaddress
import itertools
import math
import re
import socket
import unicodedata
import urllib.parse
from email.message import Message
from typing import Any

from portcullis.addresses import ends_in_number, header_address, header_addresses
from portcullis.mime import IndexedMessage, decode_words, filename, part_text, walk

MAX_TEXT = 200_000         # characters of one part that are tokenised
MAX_TOTAL_TEXT = 600_000   # characters of all parts together
# Bytes of an HTML part read: what a browser does not show before its text (a comment,
# a script, a style sheet) is skipped within it, in one linear scan (10 ms a MB).
MAX_HTML_SOURCE = 8 * 1024 * 1024
MAX_TOKENS = 4000          # distinct tokens kept per message
MIN_WORD, MAX_WORD = 3, 20

# Scripts written without spaces between words: tokenised as character bigrams.
_NOSPACE = re.compile(
    "[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0002fa1f]+")
_STRIP = "\"'()[]{}<>,.;:*`|~^"
# Characters mail clients draw as nothing (Unicode's default-ignorable ones: soft hyphen,
# zero-width space and joiners, direction marks, word joiner, byte order mark, variation
# selectors, Hangul fillers, tags): written inside a word ("vi\u200bagra", "ph&shy;armacy")
# they made it a token the classifier never learnt, the word shown was never seen.
_DRAWN_AS_NOTHING = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff]")
# Cyrillic and Greek letters drawn as Latin ones (lower case, as words() reads them; some
# are the lower case of a capital drawn as a Latin one: Cyrillic ve of B, en of H).  A word
# that mixes them with Latin letters ("vi\u0430gra") is shown as the Latin word and is read
# as it; a word all in one script is left alone, so Russian and Greek text keep their words.
_AS_LATIN = str.maketrans({
    "\u0430": "a", "\u0432": "b", "\u0435": "e", "\u043a": "k", "\u043c": "m",
    "\u043d": "h", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0442": "t",
    "\u0443": "y", "\u0445": "x", "\u0455": "s", "\u0456": "i", "\u0458": "j",
    "\u04bb": "h", "\u04cf": "l", "\u0501": "d", "\u051b": "q", "\u051d": "w",
    "\u03b1": "a", "\u03b2": "b", "\u03b5": "e", "\u03b9": "i", "\u03ba": "k",
    "\u03bf": "o", "\u03c1": "p", "\u03c4": "t", "\u03c5": "u", "\u03c7": "x"})
_LOOKALIKES = "".join(map(chr, _AS_LATIN))
# A word holding both a Latin letter and a look-alike (each look-ahead scans one word);
# searched for only in a text that holds a look-alike at all (one scan, far cheaper).
_LOOKALIKE = re.compile(f"[{_LOOKALIKES}]")
_MIXED_SCRIPT_WORD = re.compile(rf"\b(?=\w*[a-z])(?=\w*[{_LOOKALIKES}])\w+")
# A link: "http://", "https://", "ftp://" or "www." in any case, and what follows up to a
# blank or bracket.  Written without re.IGNORECASE, each letter as the class of what that
# flag matches for it (s also matches U+017F, long s; a test holds the classes to the
# flag's), and opening with the class of the first letters: the regex engine then skips
# to the next candidate letter at once instead of trying the pattern at every position
# (3.6x faster over the corpus's text parts than the same pattern under IGNORECASE).
_URL = re.compile(r"[hHfFwW](?:(?<=[hH])[tT][tT][pP][sS\u017f]?://|(?<=[fF])[tT][pP]://"
                  r"|(?<=[wW])[wW][wW]\.)[^\s<>\"'()\[\]{}]{1,500}")
# href=, src= or action= in any case, and the link's value as a browser takes it: what the
# quotes hold (blanks too), or unquoted up to a blank or '>'; one of the three groups.
# Written as _URL is (i also matches U+0130 and U+0131, dotted and dotless i): 1.6x
# faster over the corpus's HTML.
_HREF = re.compile(r"""[hHsS\u017faA](?:(?<=[hH])[rR][eE][fF]|(?<=[sS\u017f])[rR][cC]"""
                   r"""|(?<=[aA])[cC][tT][iI\u0130\u0131][oO][nN])\s*=\s*"""
                   r"""(?:"([^"]{0,1000})"|'([^']{0,1000})'|([^"'\s>]{1,500}))""")
# Browsers drop tabs and line breaks anywhere in a link, and control characters and
# blanks around it (WHATWG URL).
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\r\n")
_CONTROL_OR_BLANK = "".join(map(chr, range(0x21)))
# What comes before a link's host: a web scheme and any number of slashes (none too; a
# backslash is a slash to a browser), another scheme and its "//", or "//" alone (the
# page's own scheme).
_BEFORE_HOST = re.compile(r"(?:https?|ftp):/*|[a-z][a-z0-9+.-]{0,30}://|//")
# A comment, script or style sheet, whichever starts first, as browsers read them (a
# "<!--" inside a script is no comment, nor a "<script" inside a comment a script).  An
# unclosed one runs to the end of the text, as in a browser; and a start without its end
# is then one match, not a new search to the end from each start (quadratic: 61 KB of
# "<!--" held a worker 11 s).
_NOT_SHOWN = re.compile(r"<!--.*?(?:-->|\Z)|<(script|style)\b.*?(?:</\1\s*>|\Z)",
                        re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^<>]{0,2000}>")
# Tags of what a browser lays out apart from the text around it (blocks, line breaks,
# table cells, list items, form controls, images): they part words.  Every other tag (a,
# b, span, font, one made up) and a comment sit inside the line, so "Vi<b></b>agra" and
# "Vi<!-- -->agra" are shown as one word and must be read as one.
_PARTING_TAG = re.compile(     # the names as a tree of prefixes: 1.6x faster than a list
    r"<\s*/?\s*(?:a(?:ddress|rticle|side)|b(?:lockquote|ody|r|utton)|c(?:aption|enter)"
    r"|d(?:[dlt]|iv)|f(?:ieldset|igure|ooter|orm)|h(?:[1-6r]|ead(?:er)?|tml)"
    r"|i(?:frame|mg|nput)|li|menu|o(?:l|ption)|p(?:re)?|se(?:ction|lect)"
    r"|t(?:able|body|[dr]|extarea|foot|h(?:ead)?|itle)|ul)\b[^<>]{0,2000}>", re.IGNORECASE)
_TAG_NAME = re.compile(r"<\s*([a-zA-Z][a-zA-Z0-9]{0,10})")
# A picture's alt text: what a mail client shows in the picture's place while it blocks
# remote pictures (most do, by default), so a spam's words drawn in a picture are shown
# as the alt text's.  One of the three groups is the text.
_PICTURE_ALT = re.compile(
    r"""<[iI][mM][gG]\b[^<>]{0,2000}?\s[aA][lL][tT]\s*=\s*"""
    r"""(?:"([^"<>]{0,1000})"|'([^'<>]{0,1000})'|([^"'\s<>]{1,500}))""")
# Declarations that hide an element: display:none, visibility:hidden, a font size or an
# opacity of zero.
_HIDING_STYLE = (r"display\s*:\s*none|visibility\s*:\s*hidden"
                 r"|(?:font-size|opacity)\s*:\s*0*\.?0+(?![\d.]*[1-9])")
# The start tag of an element a mail client does not show: its style hides it, or it has
# the hidden attribute.  Text hidden so is a spammer's (ham words to outweigh the spam's,
# junk to fill the token bound).
_HIDING_TAG = re.compile(
    rf"<([a-zA-Z][a-zA-Z0-9]{{0,10}})\b[^<>]{{0,2000}}?(?:{_HIDING_STYLE}|\shidden(?=[\s/>=]))"
    r"[^<>]{0,2000}>", re.IGNORECASE)
_HIDING_DECLARATION = re.compile(_HIDING_STYLE, re.IGNORECASE)
# Any start tag (where a page's classes or colours may hide elements, each is judged),
# as long as one _HIDING_TAG finds.
_START_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]{0,10})\b[^<>]{0,4000}>")
# What a start tag that hides its element holds one of, lower-cased.
_INLINE_HIDING_MARKS = ("none", "hidden", "font-size", "opacity")
_HIDING_MARKS = (*_INLINE_HIDING_MARKS, "class", "color")
_UNJUDGED = object()
_CLASS_ATTRIBUTE = re.compile(r"""\sclass\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""",
                              re.IGNORECASE)
# Style sheets: the text, then the brace that ends it (rules, @media blocks), or the end
# (which every start reaches: text with no brace left is one match, not a search to the
# end from each character); a rule's selector that is one class (".x", "span.x"); how
# much of a message's style elements is read (past it, none counts).
_CSS_PIECE = re.compile(r"([^{}]*)([{}]|\Z)")
_CLASS_SELECTOR = re.compile(r"\s*(?:[a-zA-Z][a-zA-Z0-9]*)?\.(-?[_a-zA-Z][\w-]*)\s*")
MAX_STYLE_SHEETS = 64 * 1024
# A style element's own tags, and what CSS skips: its comments (an unclosed one runs to
# the end) and the comment marks old mail wraps a sheet in.
_STYLE_TAGS = re.compile(r"\A<style\b[^>]*>|</style\s*>\Z", re.IGNORECASE)
_CSS_SKIPPED = re.compile(r"/\*.*?(?:\*/|\Z)|<!--|-->", re.DOTALL)
# Declarations that may show (or colour) an element, and the classes a selector names.
_SHOWING_DECLARATION = re.compile(r"(?<![-\w])(?:display|visibility|font-size|opacity|color)\s*:",
                                  re.IGNORECASE)
_SELECTOR_CLASS = re.compile(r"\.(-?[_a-zA-Z][\w-]*)")
# Colours: a text colour (<font color>, or a style's), a background (bgcolor or background
# attributes, or a style's: any background property counts, and one that is no colour,
# a picture, makes the page's background unknown).  The value is one of the two groups:
# an attribute's, or a declaration's.  Written as _URL is (no re.IGNORECASE; the first
# letter's class first, then the look back at what came before it): 2.5 and 6 times
# faster over the corpus's HTML.
_TEXT_COLOUR = re.compile(r"""[cC](?<![-\w].)[oO][lL][oO][rR]\s*"""
                          r"""(?:=\s*["']?([^"'\s<>]*)|:\s*([^;"'<>{}]*))""")
_BACKGROUND = re.compile(
    r"""[bB](?<![-\w].)(?:(?:[gG][cC][oO][lL][oO][rR]|[aA][cC][kK][gG][rR][oO][uU][nN][dD])"""
    r"""\s*=\s*["']?([^"'\s<>]*)|[aA][cC][kK][gG][rR][oO][uU][nN][dD](?:-[a-zA-Z]+)?\s*:"""
    r"""\s*([^;"'<>{}]*))""")
_BODY_TAG = re.compile(r"<body\b[^<>]{0,2000}>", re.IGNORECASE)
# What an element in the background's colour may hold that is drawn in another colour:
# text given one, or a link (drawn in the link colour).
_OTHER_COLOUR_INSIDE = re.compile(rf"{_TEXT_COLOUR.pattern}|<[aA][\s>]")
_HEX_COLOUR = re.compile(r"#?([0-9a-f]{3}|[0-9a-f]{6})")
_RGB_COLOUR = re.compile(r"rgba?\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*(?:,[^)]*)?\)")
_NAMED_COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0)}
WHITE = (255, 255, 255)
# No colour at all: text so drawn is drawn as nothing, a background so drawn shows the
# one behind it (far from every colour, so _same_colour never takes it for one).
TRANSPARENT = (-1000, -1000, -1000)
_TRANSPARENT = re.compile(r"transparent|rgba\([^)]*,\s*0*\.?0+\s*\)")
# Colours this close (in each of red, green and blue) are one to a reader's eye.
_SAME_COLOUR = 8
# Elements in the background's colour whose end is searched for (to see whether they hold
# text of another colour): each search may run to the end of the text.
MAX_COLOUR_CHECKS = 64
# Pairs of a page's text colours and backgrounds compared to see whether any text may be
# hidden at all (more: every start tag is judged, as when one may).
MAX_COLOUR_PAIRS = 10_000
# Elements without content: hiding one hides nothing else.
_VOID_ELEMENTS = frozenset(("area", "base", "br", "col", "embed", "hr", "img", "input",
                            "link", "meta", "source", "track", "wbr"))
_URL_WORDS = re.compile(r"[^/?=&.\-_:%#+;~@]+")
_RECEIVED_FROM = re.compile(r"from\s+(\S+)(?:\s+\(([^)]*)\))?", re.IGNORECASE)
_DIGITS = re.compile(r"[\d.]+")
_IPV4 = re.compile(r"\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b")
# What ipaddress.IPv4Address accepts of an _IPV4 match (ASCII digits, no leading zero, at
# most 255): its parser checks each octet in Python, several times the cost of the rest
# of a Received header's tokens; the checked address is then handed over packed.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_VALID_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_HTML_MARKERS = ("font", "table", "img", "form", "script", "iframe", "center", "map", "area",
                 "input", "embed", "object", "b", "br", "p", "div", "span", "a")

# Headers whose presence (not value) is telling: mail-client and list software leave
# these, spam engines often forge only some of them.
PRESENCE_HEADERS = (
    "list-id", "list-unsubscribe", "list-post", "list-help", "list-archive", "precedence",
    "in-reply-to", "references", "organization", "x-priority", "importance",
    "x-msmail-priority", "x-mimeole", "user-agent", "x-mailer", "mime-version", "reply-to",
    "errors-to", "sender", "x-originating-ip", "content-class", "thread-index", "x-loop",
    "mail-followup-to", "x-beenthere", "x-mailman-version", "x-accept-language",
    "disposition-notification-to", "cc", "message-id", "return-path", "x-mailing-list",
    "mailing-list", "x-sender", "x-url", "content-disposition",
)
# Headers whose words are tokens, with the prefix they get.
WORD_HEADERS = {"x-mailer": "mailer", "user-agent": "mailer", "organization": "org",
                "precedence": "precedence", "x-priority": "priority",
                "importance": "importance", "content-class": "class"}


class _Tokens:
    """A message's distinct tokens in the order found, of which the first ``MAX_TOKENS``
    are kept: what comes first (the headers, then the parts in order) is what counts.
    The cut was by the tokens' sort order, and thousands of junk words sorting first
    ("000001", ...) anywhere in a spam, its end included, pushed out every telling token
    (a spam certain at 1.0 scored 0.5)."""

    __slots__ = ("add", "found")

    def __init__(self) -> None:
        self.found: dict[str, None] = {}
        # The dictionary's own method, called for every header and link token without a
        # Python frame each.  It may add past the bound within a part's links (``kept``
        # cuts what it added; ``update`` and the parts loop stop at the bound).
        self.add = self.found.setdefault

    def __len__(self) -> int:
        return len(self.found)

    def update(self, tokens: list[str]) -> None:
        found = self.found
        if len(found) + len(tokens) <= MAX_TOKENS:
            found.update(dict.fromkeys(tokens))
            return
        for token in tokens:
            if len(found) >= MAX_TOKENS:
                return
            found[token] = None

    def kept(self) -> set[str]:
        return set(itertools.islice(self.found, MAX_TOKENS))


def tokenize(message: Message) -> set[str]:
    """Every distinct token of a parsed message (the first ``MAX_TOKENS`` found)."""
    tokens = _Tokens()
    _header_tokens(message, tokens)
    _body_tokens(message, tokens)
    return tokens.kept()


def html_text(source: str) -> str:
    """The text a browser shows of an HTML source (links written in it included)."""
    return _html_text(source, _Tokens())


def words(text: str, prefix: str = "") -> list[str]:
    """Word tokens of a text (CJK/Thai runs as character bigrams), optionally prefixed."""
    text = unicodedata.normalize("NFKC", text).lower()
    if not text.isascii():
        text = _DRAWN_AS_NOTHING.sub("", text)
    found: list[str] = []

    def bigrams(match: re.Match[str]) -> str:
        run = match.group(0)
        if len(run) == 1:
            found.append(prefix + run)
        found.extend(prefix + run[i:i + 2] for i in range(len(run) - 1))
        return " "

    if not text.isascii() and not _latin1(text):    # both far cheaper than the searches
        if _LOOKALIKE.search(text):
            text = _MIXED_SCRIPT_WORD.sub(_as_latin, text)
        text = _NOSPACE.sub(bigrams, text)
    for raw in dict.fromkeys(text.split()):     # each distinct word once, in order
        word = raw.strip(_STRIP)
        length = len(word)
        if length < MIN_WORD:
            continue
        if length <= MAX_WORD:
            found.append(prefix + word)
        else:
            # Long runs (encoded junk, hashes) say little one by one; their shape does.
            found.append(f"{prefix}skip:{word[0]}{length // 10 * 10}")
    return found


def _as_latin(match: re.Match[str]) -> str:
    return match.group(0).translate(_AS_LATIN)


def _latin1(text: str) -> bool:
    """Whether every character of the text is at most U+00FF, so none is of a script
    ``_NOSPACE`` looks for: encoding such text to Latin-1 is a copy (CPython stores it
    one byte a character), where the search tests every character against its ranges."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _bucket(count: int) -> int:
    return 0 if count <= 0 else int(math.log2(count)) + 1


# -- headers -----------------------------------------------------------------------------

class _Headers:
    """A message's headers by lower-cased name, read in one pass: each ``Message.get``
    lower-cases every header name again, and a message has dozens.  Values are read as
    ``Message.get`` reads them (through the message's policy), and only when asked for."""

    def __init__(self, message: Message) -> None:
        self._raw: dict[str, list[tuple[str, Any]]]
        if isinstance(message, IndexedMessage):
            # The parser's messages keep this index already (the other checks built it),
            # and read a value as Message.get does, with compat32's work skipped.
            self._raw = message.indexed_fields()
            self._fetch = message.read_field
            return
        self._fetch = message.policy.header_fetch_parse
        self._raw = {}
        for name, value in message.raw_items():
            self._raw.setdefault(name.lower(), []).append((name, value))

    def __contains__(self, name: str) -> bool:
        return name in self._raw

    def get(self, name: str) -> Any:
        """The first value (``Message.get``), None when absent; ``name`` lower-case."""
        raw = self._raw.get(name)
        return self._fetch(*raw[0]) if raw else None

    def get_all(self, name: str) -> list[Any]:
        """Every value in order (``Message.get_all``), [] when absent."""
        return [self._fetch(*raw) for raw in self._raw.get(name, ())]

    def decoded(self, name: str) -> str:
        """The first value with encoded words decoded (``mime.decoded_header``)."""
        value = self.get(name)
        return "" if value is None else decode_words(str(value))


def _header_tokens(message: Message, tokens: _Tokens) -> None:
    headers = _Headers(message)
    subject = headers.decoded("subject")
    tokens.update(words(subject, "subject:"))
    if not subject:
        tokens.add("subject:none")
    elif subject.isupper() and len(subject) > 8:
        tokens.add("subject:allcaps")
    if "!!" in subject or "$$" in subject:
        tokens.add("subject:punctuation")
    # One token for the whole set: these headers come in correlated groups (list
    # software adds eight at once), and counting each would weigh one fact eight times.
    present = [name for name in PRESENCE_HEADERS if name in headers]
    tokens.add("headers:" + "+".join(present) if present else "headers:none")
    _address_tokens(headers, tokens)
    for header, prefix in WORD_HEADERS.items():
        value = headers.decoded(header)
        if value:
            tokens.update(words(_DIGITS.sub(" ", value), f"{prefix}:"))
    message_id = str(headers.get("message-id") or "")
    if message_id:
        domain = message_id.strip().strip("<>").rpartition("@")[2].lower()
        tokens.add(f"mid:{_domain_tail(domain) or 'nodomain'}")
    for index, received in enumerate(headers.get_all("received")[:8]):
        _received_tokens(str(received), tokens, index)


def _address_tokens(headers: _Headers, tokens: _Tokens) -> None:
    name, address = header_address(headers.decoded("from"))
    address = address.lower()
    if address:
        tokens.add(f"from:addr:{address[:60]}")
        tokens.add(f"from:domain:{_domain_tail(address.rpartition('@')[2])}")
    else:
        tokens.add("from:none")
    if name:
        tokens.update(words(name, "from:name:"))
    else:
        tokens.add("from:noname")
    reply_to = header_address(headers.decoded("reply-to"))[1].lower()
    if reply_to:
        same = reply_to == address
        tokens.add("reply-to:same" if same else
                   f"reply-to:domain:{_domain_tail(reply_to.rpartition('@')[2])}")
    return_path = str(headers.get("return-path") or "").strip()
    if return_path:
        rp = return_path.strip("<>").lower()
        tokens.add("return-path:empty" if not rp else
                   f"return-path:domain:{_domain_tail(rp.rpartition('@')[2])}")
    to = headers.get_all("to")
    recipients = header_addresses(to + headers.get_all("cc"))
    tokens.add(f"rcpt:count:{_bucket(len(recipients))}")
    if any(not n for n, _ in recipients):
        tokens.add("to:noname")
    to_text = " ".join(str(v) for v in to).lower()
    if "undisclosed" in to_text:
        tokens.add("to:undisclosed")


def _received_tokens(value: str, tokens: _Tokens, index: int) -> None:
    match = _RECEIVED_FROM.search(value)
    if not match:
        return
    host = match.group(1).strip("[]").lower()
    if "." in host and not _IPV4.fullmatch(host):
        tokens.add(f"received:{_domain_tail(host)}")
    for ip in _IPV4.finditer(match.group(2) or host):
        if not _VALID_IPV4.fullmatch(ip.group(0)):
            continue
        address = ipaddress.IPv4Address(socket.inet_aton(ip.group(0)))
        if address.is_private or address.is_loopback:
            tokens.add("received:ip:private")
            continue
        tokens.add(f"received:ip:{ip.group(1)}.{ip.group(2)}")
        tokens.add(f"received:ip:{ip.group(1)}.{ip.group(2)}.{ip.group(3)}")
    if index == 0 and "(" not in value:
        tokens.add("received:noparen")


def _domain_tail(domain: str, labels: int = 2) -> str:
    parts = [p for p in domain.strip(".").split(".") if p][-labels - 1:]
    # Keep three labels for two-letter country domains (co.uk, com.br).
    if len(parts) == labels + 1 and len(parts[-1]) == 2 and len(parts[-2]) <= 3:
        return ".".join(parts)
    return ".".join(parts[-labels:])


# -- body ----------------------------------------------------------------------------------

def _body_tokens(message: Message, tokens: _Tokens) -> None:
    walked = list(walk(message))
    # Every text part gets the same share of what is read.  The parts used to take it in
    # turn, so three large ones a reader is never shown (plain alternatives before the
    # HTML one a mail client shows) used it all up and the shown text went unread.
    texts = sum(1 for _depth, part in walked if not part.is_multipart()
                and part.get_content_maintype() == "text")
    share = min(MAX_TEXT, MAX_TOTAL_TEXT // max(texts, 1))
    parts = 0
    for _depth, part in walked:
        if len(tokens) >= MAX_TOKENS:
            return                  # full: the rest would only be read to be left out
        if part.is_multipart():
            tokens.add(f"ct:{part.get_content_type()}")
            continue
        parts += 1
        ctype = part.get_content_type()
        tokens.add(f"part:{ctype}")
        cte = str(part.get("Content-Transfer-Encoding", "") or "").strip().lower()
        if cte:
            tokens.add(f"cte:{cte[:20]}")
        charset = part.get_content_charset()
        if charset:
            tokens.add(f"charset:{charset[:30]}")
        name = filename(part)
        if name:
            extension = name.rpartition(".")[2].lower() if "." in name else "none"
            tokens.add(f"filename:ext:{extension[:10]}")
            tokens.update(words(name.rpartition(".")[0], "filename:"))
        if not ctype.startswith("text/"):
            continue
        if ctype == "text/html":
            text = _html_text(part_text(part, limit=MAX_HTML_SOURCE), tokens, share)
        else:
            text = part_text(part, limit=share * 4)[:share]
        text, urls = _cut_urls(text)
        _url_tokens(urls, tokens)
        tokens.update(words(text))
    tokens.add(f"parts:{_bucket(parts)}")


def _cut_urls(text: str) -> tuple[str, list[str]]:
    """The text with each URL cut out (a space instead), and the URLs: in one scan."""
    urls: list[str] = []

    def cut(match: re.Match[str]) -> str:
        urls.append(match.group(0))
        return " "

    return _URL.sub(cut, text), urls


def _html_text(source: str, tokens: _Tokens, budget: int | None = None) -> str:
    """The text a browser shows of HTML, entities undone (links written in it included);
    the links of its tags and its notable tags become tokens on the way.  ``budget``:
    the characters read of the source once comments, scripts and style sheets are cut
    (they spend none of it: a long one first hid the text)."""
    tokens.add("html:yes")
    if "<!--" in source:
        tokens.add("html:comment")
    sheets: list[str] = []
    sheets_read = 0                 # characters of style elements (past the bound too)

    def cut(match: re.Match[str]) -> str:
        nonlocal sheets_read
        if match.group(1) and match.group(1).lower() == "style":
            sheets_read += len(match.group(0))
            if sheets_read <= MAX_STYLE_SHEETS:
                sheets.append(match.group(0))
        return ""

    shown = _NOT_SHOWN.sub(cut, source)[:budget]
    hiding = _Hiding.of(shown, sheets, complete=sheets_read <= MAX_STYLE_SHEETS)
    visible, hidden = _cut_hidden(shown, hiding)
    if hidden:
        tokens.add("html:hidden")
    _url_tokens(_attribute_links(visible), tokens)
    for alt in _PICTURE_ALT.findall(visible):
        tokens.update(words(html.unescape("".join(alt)), "alt:"))
    for name in {m.group(1).lower() for m in _TAG_NAME.finditer(visible)}:
        if name in _HTML_MARKERS:
            tokens.add(f"html:tag:{name}")
    return html.unescape(_TAG.sub("", _PARTING_TAG.sub(" ", visible)))


class _Hiding:
    """What hides an element of a page beyond its own inline style, read cheaply (no CSS
    engine): the classes its style sheets hide (rules of one class selector, outside
    @media blocks), and a text colour that is the background's: the element's own, or
    the page's when nothing but the page has one (white unless the body says otherwise;
    unknown, and the rule not applied, where a cell or a button has a background)."""

    def __init__(self, classes: frozenset[str], background: tuple[int, int, int] | None,
                 ) -> None:
        self.classes = classes
        self.background = background

    @classmethod
    def of(cls, shown: str, sheets: list[str], *, complete: bool) -> _Hiding | None:
        """The rules of a page (``shown``: its HTML without comments, scripts and style
        sheets; ``sheets``: its style elements, ``complete`` when none was left out for
        MAX_STYLE_SHEETS), None when it sets no class and no colour.  Where sheets were
        left out, one of them may show a class or set a background: only an element's
        own colours count then."""
        if not sheets and "color" not in shown.lower():
            return None
        texts = (shown, *sheets)
        # Every background is looked at (a cap would let a dark cell after many white
        # ones pass for a white page, and white text on it be left unread).
        backgrounds = {_colour(found) for text in texts for found in _BACKGROUND.finditer(text)}
        page = _page_background(shown, backgrounds) if complete else None
        classes = _hidden_classes(sheets, page) if complete else frozenset()
        colours = {_colour(found) for text in texts for found in _TEXT_COLOUR.finditer(text)}
        if not classes and TRANSPARENT not in colours and \
                len(colours) * len(backgrounds) <= MAX_COLOUR_PAIRS and \
                not any(_same_colour(colour, background) for colour in colours
                        for background in {page, *backgrounds}):
            return None         # no text is in the colour of a background: nothing hides
        return cls(classes, page)

    def verdict(self, tag: str) -> bool | None:
        """Whether the start tag ``tag`` hides its element: True by its inline style or
        a class the style sheets hide (with no style of its own that may show it), None
        by its text colour (unless what it holds has another), False when it does not."""
        lowered = tag.lower()
        if not any(mark in lowered for mark in _HIDING_MARKS):
            return False                # most tags: none of the searches below can match
        if _HIDING_TAG.fullmatch(tag):
            return True
        found = _CLASS_ATTRIBUTE.search(tag) if self.classes else None
        if found is not None and \
                not self.classes.isdisjoint("".join(found.groups("")).lower().split()) and \
                not _SHOWING_DECLARATION.search(tag):
            return True
        return None if _colour_hides(tag, self.background) else False


def _colour(found: re.Match[str] | None) -> tuple[int, int, int] | None:
    """The colour a _TEXT_COLOUR or _BACKGROUND match sets as red, green, blue (#fff,
    #ffffff, ffffff, rgb(), white, black; TRANSPARENT), None for anything else (or no
    match)."""
    if found is None:
        return None
    value = (found.group(1) or found.group(2) or "").lower().replace("!important", "").strip()
    if value in _NAMED_COLOURS:
        return _NAMED_COLOURS[value]
    if _TRANSPARENT.fullmatch(value):
        return TRANSPARENT
    if hexed := _HEX_COLOUR.fullmatch(value):
        digits = hexed.group(1)
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return int(digits[:2], 16), int(digits[2:4], 16), int(digits[4:], 16)
    if rgb := _RGB_COLOUR.fullmatch(value):
        red, green, blue = (min(int(v), 255) for v in rgb.groups())
        return red, green, blue
    return None


def _same_colour(one: tuple[int, int, int] | None, other: tuple[int, int, int] | None) -> bool:
    return one is not None and other is not None and \
        all(abs(a - b) <= _SAME_COLOUR for a, b in zip(one, other, strict=True))


def _colour_hides(style: str, background: tuple[int, int, int] | None) -> bool:
    """Whether a start tag or a rule's declarations (``style``) set the text colour to
    the background: the element's own, or else the page's (``background``: None when
    not known)."""
    text = _TEXT_COLOUR.search(style)
    if text is None:
        return False
    colour = _colour(text)
    found = _BACKGROUND.search(style)
    own = _colour(found) if found else TRANSPARENT      # none: the one behind shows
    return colour == TRANSPARENT or \
        _same_colour(colour, background if own == TRANSPARENT else own)


def _page_background(shown: str, backgrounds: set[tuple[int, int, int] | None],
                     ) -> tuple[int, int, int] | None:
    """The page's background colour when every background on it (``backgrounds``, None
    for one that is no colour) is that one (the body's, white when it sets none); None
    when any other is set."""
    body = _BODY_TAG.search(shown)
    own = _BACKGROUND.search(body.group(0)) if body else None
    page = _colour(own) if own else WHITE
    return page if all(background == TRANSPARENT or _same_colour(background, page)
                       for background in backgrounds) else None


def _hidden_classes(sheets: list[str], background: tuple[int, int, int] | None,
                    ) -> frozenset[str]:
    """The classes that rules of ``sheets`` (style elements) hide, lower-cased.  Only
    what is sure counts (no cascade is worked out here): a rule of one class selector,
    not in an @media block (shown on some screens only), for a class no other rule may
    show or colour; none at all when a rule may show anything with !important."""
    hiding: set[str] = set()
    showing: set[str] = set()
    for sheet in sheets:
        text = _CSS_SKIPPED.sub(" ", _STYLE_TAGS.sub("", sheet))
        selectors: list[str] = []           # of the blocks open, outermost first
        for words_before, brace in _CSS_PIECE.findall(text):
            if not brace:
                break                                   # the end
            if brace == "{":
                selectors.append(words_before)
                continue
            if not selectors:
                continue                                # a stray brace
            selector = selectors.pop()
            if not selectors and (_HIDING_DECLARATION.search(words_before)
                                  or _colour_hides(words_before, background)):
                hiding.update(found.group(1).lower() for one in selector.split(",")
                              if (found := _CLASS_SELECTOR.fullmatch(one)))
            elif _SHOWING_DECLARATION.search(words_before):
                if "!important" in words_before.lower():
                    return frozenset()
                showing.update(name.lower() for name in _SELECTOR_CLASS.findall(selector))
    return frozenset(hiding - showing)


def _cut_hidden(source: str, hiding: _Hiding | None = None) -> tuple[str, int]:
    """The HTML without the elements a reader is not shown (by their inline style, or
    by what ``hiding`` says; an unclosed one hides the rest, as in a browser), and how
    many there were.  Each element is searched for its end from its start only, and
    what it holds is not searched again: linear."""
    if hiding is None:
        lowered = source.lower()
        if not any(mark in lowered for mark in _INLINE_HIDING_MARKS):
            return source, 0    # none can hide: the words searched for are all absent
    shown: list[str] = []
    at = hidden = colour_checks = 0
    # What each tag says (pages repeat their tags): hidden, shown, or hidden by its colour.
    verdicts: dict[str, Any] = {}
    for start in (_HIDING_TAG if hiding is None else _START_TAG).finditer(source):
        if start.start() < at:
            continue            # inside an element hidden already
        tag = start.group(0)
        verdict: bool | None = True
        if hiding is not None:
            verdict = verdicts.get(tag, _UNJUDGED)
            if verdict is _UNJUDGED:
                verdict = verdicts[tag] = hiding.verdict(tag)
            if verdict is False:
                continue
        name = start.group(1).lower()
        end: int | None = None
        if verdict is None:
            if colour_checks >= MAX_COLOUR_CHECKS:
                continue
            colour_checks += 1
            end = _end_of(source, name, start)
            # Text of another colour inside (a <font color> or a link in a white <div>)
            # is shown.
            if _OTHER_COLOUR_INSIDE.search(source, start.end(), end):
                continue
        # A hidden block still parts the words around it; inline, it joins them, but text
        # in the background's colour still takes its place on the line.
        gap = " " if verdict is None or _PARTING_TAG.match(tag) else ""
        shown.append(source[at:start.start()] + gap)
        hidden += 1
        at = end if end is not None else _end_of(source, name, start)
    shown.append(source[at:])
    return "".join(shown), hidden


def _end_of(source: str, name: str, start: re.Match[str]) -> int:
    """Where the element whose start tag is ``start`` ends (an empty one: at its tag)."""
    if name in _VOID_ELEMENTS or start.group(0).endswith("/>"):
        return start.end()
    return _element_end(source, name, start.end())


def _element_end(source: str, name: str, start: int) -> int:
    """Where the element ``name`` whose start tag ends at ``start`` ends (its own kind
    nested inside counted), or the end of the source."""
    depth = 1
    # (re keeps the compiled patterns: a message's hidden elements are of few kinds.)
    tag_of_kind = re.compile(rf"<(/?){name}\b[^<>]{{0,2000}}>", re.IGNORECASE)
    for tag in tag_of_kind.finditer(source, start):
        depth += -1 if tag.group(1) else 1
        if depth == 0:
            return tag.end()
    return len(source)


def _attribute_links(source: str) -> list[str]:
    """The links of href, src and action attributes as a browser reads them: entities
    undone (``http:&#47;&#47;``), tabs and line breaks dropped, blanks around trimmed,
    backslashes read as slashes."""
    links = []
    for quoted, single, bare in _HREF.findall(source):
        value = html.unescape(quoted or single or bare).translate(_TAB_OR_NEWLINE)
        links.append(value.strip(_CONTROL_OR_BLANK).replace("\\", "/"))
    return links


def _link_host(host: str) -> str:
    """A link's host as a browser reads it: percent-encoding undone (evil%2Eexample is
    evil.example) and the characters drawn as nothing dropped (IDNA maps them away)."""
    if "%" in host:
        host = urllib.parse.unquote(host, errors="replace").lower()
    return host if host.isascii() else _DRAWN_AS_NOTHING.sub("", host)


def _url_tokens(urls: list[str], tokens: _Tokens) -> None:
    tokens.add(f"urls:{_bucket(len(urls))}")
    for url in urls[:100]:
        url = url.strip().lower()
        if url.startswith(("mailto:", "#", "cid:")):
            tokens.add(f"url:scheme:{url.split(':', 1)[0]}" if ":" in url else "url:anchor")
            continue
        before_host = _BEFORE_HOST.match(url)
        rest = url[before_host.end():] if before_host else url
        host, _, path = rest.partition("/")
        if "@" in host:
            tokens.add("url:userinfo")
            host = host.rpartition("@")[2]
        host = _link_host(host.split(":")[0])
        if _IPV4.fullmatch(host) or (before_host and ends_in_number(host)):
            tokens.add("url:ip")
        elif host:
            labels = host.split(".")
            for i in range(max(0, len(labels) - 3), len(labels)):
                tokens.add("url:" + ".".join(labels[i:]))
        if "%" in path:
            tokens.add("url:escaped")
        for piece in _URL_WORDS.findall(path)[:20]:
            if MIN_WORD <= len(piece) <= MAX_WORD:
                tokens.add(f"url:{piece}")
