import pytest

from portcullis.smtp.hygiene import (
    SmugglingAttempt,
    header_section_too_large,
    line_count,
    normalise_line_endings,
    received_count,
)

pytestmark = pytest.mark.gateway

SMUGGLED_TAIL = b"MAIL FROM:<admin@bank.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"


def test_clean_crlf_content_is_returned_unchanged():
    content = b"Subject: x\r\n\r\nline\r\n.leading dot was stuffed\r\n"
    assert normalise_line_endings(content) is content


def test_bare_lf_and_cr_are_normalised_to_crlf():
    assert normalise_line_endings(b"Subject: x\n\nbody\rmore\r\n") == \
        b"Subject: x\r\n\r\nbody\r\nmore\r\n"


@pytest.mark.parametrize("terminator", [
    b"\r\n.\n", b"\n.\r\n", b"\n.\n", b"\r.\r\n", b"\r\n.\r", b"\r.\r",
])
def test_end_of_data_lookalikes_are_smuggling_attempts(terminator):
    content = b"Subject: x\r\n\r\nhello" + terminator + SMUGGLED_TAIL
    with pytest.raises(SmugglingAttempt):
        normalise_line_endings(content)


def test_a_dot_stuffed_line_is_not_mistaken_for_smuggling():
    # The client sent "..\r\n" which aiosmtpd turned back into ".\r\n"; a bare LF elsewhere.
    content = b"Subject: x\r\n\r\n.\r\nbare\nlf\r\n"
    assert normalise_line_endings(content) == b"Subject: x\r\n\r\n.\r\nbare\r\nlf\r\n"


def test_the_header_section_is_measured_up_to_the_first_empty_line():
    head = b"Subject: x\r\n" + b"X-A: b\r\n" * 100            # 812 bytes
    assert not header_section_too_large(head + b"\r\n" + b"body " * 1000, 1000)
    assert header_section_too_large(head * 2 + b"\r\n" + b"body", 1000)
    assert not header_section_too_large(head.replace(b"\r\n", b"\n") + b"\n" + b"b" * 5000,
                                        1000)
    assert header_section_too_large(head * 2, 1000)          # no body: all of it is header
    assert not header_section_too_large(head * 2, 5000)
    assert not header_section_too_large(b"\r\n" + b"b" * 5000, 1000)   # no header at all


def test_lines_are_counted_as_they_will_be_after_normalising():
    assert line_count(b"a\r\nb\r\n") == 2
    assert line_count(b"a\rb\nc\r\n") == 3
    # Bare CRs inside one CRLF line (under the line-length limit) are lines too.
    content = (b"x\r" * 4000 + b"\r\n") * 10
    assert line_count(content) == 40010
    assert line_count(normalise_line_endings(content)) == 40010


def test_received_fields_are_counted_in_the_header_section_only():
    assert received_count(b"Received: a\r\nreceived :b\r\n c\r\n\r\nReceived: body\r\n") == 2
    assert received_count(b"X-Received: a\r\nSubject: Received: b\r\n\r\n") == 0
