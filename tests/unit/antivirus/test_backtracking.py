"""Patterns run on senders' text hold Python's interpreter lock while they match: each is
fed the shape that made it backtrack (seconds to days for a few hundred bytes to a few
hundred KB before), and must still find what it is for."""

from __future__ import annotations

import pytest

from portcullis.antivirus import markup, passwords, pdf, uuencode
from portcullis.mime import parse_message

pytestmark = [pytest.mark.antivirus, pytest.mark.timeout(60)]


def test_an_svg_behind_many_comments_is_still_an_svg_and_no_run_of_them_stalls():
    assert markup.active_content(("page.html",), b"<!-- a -->\n<!---->" + b"<svg><script>")
    hostile = b"<!---->" * 5000 + b"<html><script>x()</script>"
    assert markup.active_content(("page.html",), hostile) is None


def test_a_keyword_before_a_long_run_of_blanks_costs_no_more_than_reading_it():
    message = parse_message(b"Subject: files\r\n\r\nThe pw is: s3cret!\r\npw"
                            + b"\r\n" * 30_000 + b"\r\n")
    assert "s3cret" in passwords.candidates(message)


def test_many_embedded_file_dictionaries_without_an_end_are_read_in_linear_time():
    dictionary = b"<< /Type /Filespec /F (a.exe) /EF << /F 12 0 R >> >>"
    assert pdf._EMBEDDED_REF.search(dictionary)
    assert pdf._EMBEDDED_REF.search(b"/EF<<" * 200_000) is None


def test_uuencoded_names_end_at_the_line_and_long_begin_lines_do_not_stall():
    text = b"begin 644 invoice.exe  \r\n#86)C\r\n`\r\nend\r\n"
    [found] = uuencode.files(text, max_files=4, limit=1024)
    assert found.name == "invoice.exe" and found.data == b"abc"
    hostile = (b"begin 644 " + b"x " * 300 + b"\n") * 2000
    assert uuencode.has_blocks(hostile) and uuencode.files(hostile, max_files=4,
                                                           limit=1024) == []


def test_a_run_of_unterminated_input_or_meta_tags_is_read_once():
    """A password field or refresh was searched for from each "<input" ("<meta") over
    the 1,000 (600) bytes after it: a run of them without an end took 2 s a MB (an
    attachment check's minute for a few pages).  Each tag is read once now, and a "<"
    inside one is still part of it, as browsers read it."""
    for start in (b"<input ", b"<meta "):
        assert markup.active_content(("page.html",), start * 7_000_000) is None
    assert markup.active_content(("page.html",), b"<input <x type=password>") == \
        "a form asking for a password"
    assert markup.active_content(("page.html",), b"<meta <x content='0;url=https://k.example"
                                                 b"/' http-equiv=refresh>") == \
        "a page that sends the reader to a web site at once"
