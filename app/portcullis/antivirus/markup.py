"""HTML and SVG attachments that act as web pages: credential forms and file smuggling.

A page mailed as an attachment opens from the recipient's disk, where no browser warning
about a site applies: phishing kits mail their login pages this way ("Invoice.html" asking
for the mailbox password), and pages or SVG images carry scripts that assemble a file in
the browser and hand it to the user as a download (HTML smuggling), past every filter
that looks for files in mail.  What is looked for is plain markup in the first MiB of
the file.  Phishing kits hide their form from filters like this one by writing the page
with script from encoded text (``document.write(atob(...))``), or mail a page whose only
job is to send the reader to the kit's site at once: both are found by those marks, as
pages people mail each other (exported reports, receipts) do neither.

A web archive (``.mht``, ``.mhtml``: a page saved with its pictures, as a MIME message)
opens in the browser as the page it holds: its pages are judged as pages, once their
transfer encoding is undone.
"""

from __future__ import annotations

import html
import re
from email.message import Message

from portcullis.antivirus import filetypes
from portcullis.mime import payload, walk

MARKUP_EXTENSIONS = frozenset({"htm", "html", "shtml", "xht", "xhtml", "svg"})
WEB_ARCHIVE_EXTENSIONS = frozenset({"mht", "mhtml"})
# The parts of a web archive that are pages (frames: each its own), and how many are read.
_PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml"})
MAX_ARCHIVED_PAGES = 16
# Bytes of a page looked at: blanks or comments a browser does not show may come first.
MAX_PAGE = 1024 * 1024
_MARKUP_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<(?:!doctype\s+html|html|svg|\?xml)",
                           re.IGNORECASE)
# Start tags, each from its name to its ">" (or the end): a "<" inside is one more
# character of an attribute's name to a browser (<input <x type=password> is a password
# field).  Possessive and unbounded, so each byte is read by one tag only (a bounded
# search again from each "<input" of a run of them took 2 s a MB).
_INPUT_TAG = re.compile(rb"<input\b[^>]*+", re.IGNORECASE)
_META_TAG = re.compile(rb"<meta\b[^>]*+", re.IGNORECASE)
_PASSWORD_TYPE = re.compile(rb"\btype\s*=\s*[\"']?password\b", re.IGNORECASE)
# A script element, or an event handler attribute (onload=, onerror=, ...: script run
# by the page as well).
_SCRIPT = re.compile(rb"<script\b", re.IGNORECASE)
_ANY_TAG = re.compile(rb"<[a-zA-Z][^>]*+")           # (as _INPUT_TAG, any start tag)
_EVENT_HANDLER = re.compile(rb"\son[a-z]{3,30}\s*=", re.IGNORECASE)
# An SVG document: <svg> is the first element (after an XML declaration, comments and a
# doctype), not an image inside a page.
# (The comments' group is possessive: backtracking into a run of k comments took 2^k.)
_SVG_ROOT = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*+"
                       rb"(?:<!doctype\s+svg[^>]*>\s*)?<svg\b", re.IGNORECASE | re.DOTALL)
# A script building a file for the browser to save: decode embedded data, wrap it in a
# Blob and offer it as a download.
_SMUGGLING = re.compile(rb"\b(?:msSaveOrOpenBlob|msSaveBlob|createObjectURL)\s*\("
                        rb"|\.download\s*=", re.IGNORECASE)


# Script that writes the page (or runs code) from text it decodes first.
_WRITES_DECODED = re.compile(
    rb"(?:document\.write(?:ln)?|eval|\.innerHTML\s*=|\.outerHTML\s*=|insertAdjacentHTML)"
    rb"\s*\(?[^;)]{0,80}?\b(?:atob|unescape|decodeURIComponent|String\.fromCharCode)\s*\(",
    re.IGNORECASE)
# Sent elsewhere at once: a refresh header, or script assigning a web address to the
# window's location.
# (A refresh's attributes in any order; its content a delay, then the address, with
# "url=" before it or not.)
_REFRESH = re.compile(rb"http-equiv\s*=\s*[\"']?refresh", re.IGNORECASE)
_CONTENT_ELSEWHERE = re.compile(rb"content\s*=\s*[\"']?\s*[\d.]*\s*[;,]?\s*(?:url\s*=\s*)?"
                                rb"['\"]?\s*(?:https?:)?//", re.IGNORECASE)
_SCRIPT_REDIRECT = re.compile(
    rb"\b(?:window\.|document\.|top\.|self\.)?location(?:\.href)?\s*=\s*[\"'`](?:https?:)?//"
    rb"|\blocation\.(?:replace|assign)\s*\(\s*[\"'`](?:https?:)?//", re.IGNORECASE)


def _references_undone(head: bytes) -> bytes:
    """The page with the character references in its tags undone, as browsers undo them
    in attribute values (``type="&#112;assword"`` is a password field); text between
    tags is left as it is (``&lt;input type=password&gt;`` shown on a page is no field)."""
    if b"&" not in head:
        return head
    return _ANY_TAG.sub(_tag_references_undone, head)


def _tag_references_undone(tag: re.Match[bytes]) -> bytes:
    text = tag.group(0)
    return html.unescape(text.decode("latin-1")).encode("utf-8", "replace") if b"&" in text \
        else text


def _as_utf8(head: bytes) -> bytes:
    """The text as UTF-8 when a UTF-16 byte order mark says it is not (browsers read a
    page by its mark; the marks looked for here are ASCII)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", "replace").encode("utf-8")
    return head


def is_markup(names: tuple[str, ...], head: bytes) -> bool:
    """Whether a file is a web page or SVG image, by any of its names or its first bytes."""
    return any(_extension(name) in MARKUP_EXTENSIONS for name in names) or \
        bool(_MARKUP_START.match(_as_utf8(head)))


def is_web_archive(names: tuple[str, ...]) -> bool:
    """Whether a file is a web archive (MHTML), by any of its names: a browser opens it
    by its name, whatever its first lines."""
    return any(_extension(name) in WEB_ARCHIVE_EXTENSIONS for name in names)


def archived_active_content(archive: Message) -> str | None:
    """What the pages of a web archive (parsed as the MIME message it is) do that a
    document should not, or None: each page part's first MAX_PAGE bytes, decoded, for
    the first MAX_ARCHIVED_PAGES of them."""
    pages = (part for _, part in walk(archive)
             if not part.is_multipart() and part.get_content_type() in _PAGE_TYPES)
    for _, part in zip(range(MAX_ARCHIVED_PAGES), pages, strict=False):
        page = payload(part)
        found = active_content((), page[:MAX_PAGE]) if page else None
        if found:
            return found
    return None


def _extension(name: str) -> str:
    """A name's last extension as Windows acts on it (trailing dots and blanks, invisible
    characters gone), '' when none."""
    extensions = filetypes.extensions(name)
    return extensions[-1] if extensions else ""


def _a_tag_with(head: bytes, tag: re.Pattern[bytes], *marks: re.Pattern[bytes]) -> bool:
    """Whether a ``tag`` of the page holds every one of ``marks`` (the first one
    searched for over the whole page first: most pages have none)."""
    if not marks[0].search(head):
        return False
    return any(all(mark.search(found.group(0)) for mark in marks)
               for found in tag.finditer(head))


def active_content(names: tuple[str, ...], head: bytes) -> str | None:
    """What a page or SVG image does that a document should not, or None."""
    head = _references_undone(_as_utf8(head))
    if _a_tag_with(head, _INPUT_TAG, _PASSWORD_TYPE):
        return "a form asking for a password"
    if _a_tag_with(head, _META_TAG, _REFRESH, _CONTENT_ELSEWHERE):
        return "a page that sends the reader to a web site at once"
    if not _SCRIPT.search(head) and not _a_tag_with(head, _ANY_TAG, _EVENT_HANDLER):
        return None
    if _SMUGGLING.search(head):
        return "a script that builds a file to download (HTML smuggling)"
    # An image has no business running code: scripted SVGs redirect to phishing pages.
    if any(_extension(name) == "svg" for name in names) or _SVG_ROOT.match(head):
        return "a script in an SVG image"
    if _WRITES_DECODED.search(head):
        return "a script that writes the page from encoded text (a hidden form)"
    if _SCRIPT_REDIRECT.search(head):
        return "a page that sends the reader to a web site at once"
    return None
