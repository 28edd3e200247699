"""Property-based tests (hypothesis) over the hostile-input surface: the SMTP command path,
the MIME walk, line-ending hygiene and the archive.  ``RELIABILITY_SCALE`` multiplies the
number of examples (``make soak``)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.reliability import fuzz_targets
from tests.support.soak import scaled

pytestmark = pytest.mark.reliability

# Ten times as many examples in make soak (tests/conftest.py picks repeatable or random).
EXAMPLES = settings(max_examples=scaled(150),
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])

# -- SMTP: commands built from the protocol's own words, with hostile bytes mixed in ------

VERBS = st.sampled_from(["EHLO", "HELO", "MAIL FROM:", "RCPT TO:", "DATA", "RSET", "NOOP",
                         "VRFY", "EXPN", "HELP", "QUIT", "STARTTLS", "AUTH PLAIN", "BDAT 10",
                         "ehlo", "MAIL FROM:<", "RCPT TO:<", "XCLIENT"])
HOSTILE = st.binary(max_size=64) | st.sampled_from(
    [b"<bob@example.com>", b"<>", b"<@a,@b:c@d>", b"\x00", b"\xff\xfe", b"\r", b"\n", b".",
     b" SIZE=99999999999999999999", b" BODY=8BITMIME SMTPUTF8", b"<\xc3\xa9@example.com>",
     b"<bob@example.com> " + b"X" * 600, b"<" + b"a" * 300 + b"@example.com>",
     # paths that once crashed the email package's address parser (451 for ever)
     b"a@[ ", b"<a@[", b"<@[ ", b'<"q\\"@d>', b"<a(c@d>", b"<a@[IPv6:::1]>"])
LINE = st.builds(lambda verb, arg, end: verb.encode() + arg + end, VERBS, HOSTILE,
                 st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r\n", b""]))


@EXAMPLES
@given(lines=st.lists(LINE, max_size=12), tail=st.binary(max_size=200))
@example(lines=[b"EHLO a.test\r\n", b"MAIL FROM:a@[ \r\n", b"MAIL FROM:<a@[\r\n",
                b"MAIL FROM:<a@remote.test>\r\n", b"RCPT TO:<@[ \r\n"], tail=b"")
def test_any_command_sequence_gets_well_formed_replies_and_no_internal_error(lines, tail):
    fuzz_targets.smtp_session(b"".join(lines) + tail)


@EXAMPLES
@given(body=st.binary(max_size=3000))
def test_any_message_content_is_answered_clearly(body):
    fuzz_targets.smtp_session(b"EHLO a.test\r\nMAIL FROM:<a@remote.test>\r\n"
                              b"RCPT TO:<bob@example.com>\r\nDATA\r\n" + body)


# -- MIME: structured messages as well as noise ------------------------------------------

HEADER_VALUE = st.text(max_size=60) | st.sampled_from(
    ["=?utf-8?b?w6k=?=", "=?x-unknown?q?caf=E9?=", "=?utf-8?b?!!!?=", '"quoted', "\x00",
     "text/plain; charset=\x00bad", "multipart/mixed; boundary=", 'attachment; filename*=x'])


def _leaf(value: str, payload: bytes) -> bytes:
    return (f"Content-Type: {value}\r\nContent-Transfer-Encoding: base64\r\n\r\n").encode(
        "utf-8", "surrogateescape") + payload + b"\r\n"


MIME_TREE = st.recursive(
    st.builds(_leaf, HEADER_VALUE, st.binary(max_size=80)),
    lambda children: st.builds(
        lambda parts, boundary: (f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
                                 ).encode() + b"".join(f"--{boundary}\r\n".encode() + p
                                                       for p in parts)
        + f"--{boundary}--\r\n".encode(),
        st.lists(children, max_size=4), st.sampled_from(["b", "=_x", "-", "a b", ""])),
    max_leaves=20)


@EXAMPLES
@given(subject=HEADER_VALUE, tree=MIME_TREE)
def test_mime_walk_handles_any_structure_within_bounds(subject, tree):
    head = f"Subject: {subject}\r\nFrom: {subject} <a@b.test>\r\nMIME-Version: 1.0\r\n"
    fuzz_targets.mime_walk(head.encode("utf-8", "surrogateescape") + tree)


@EXAMPLES
@given(data=st.binary(max_size=5000))
def test_mime_walk_handles_any_bytes(data):
    fuzz_targets.mime_walk(data)


# -- hygiene and archive -------------------------------------------------------------------

NEWLINE_SOUP = st.lists(st.sampled_from([b"\r\n", b"\r", b"\n", b".", b"a", b"MAIL", b"\x00"]),
                        max_size=40).map(b"".join)


@EXAMPLES
@given(data=NEWLINE_SOUP | st.binary(max_size=500))
def test_line_endings_are_normalised_without_creating_an_end_of_data(data):
    fuzz_targets.hygiene(data)


@EXAMPLES
@given(data=st.binary(max_size=20000))
def test_archive_returns_every_body_byte_for_byte_and_search_is_safe(data):
    fuzz_targets.archive_roundtrip(data)


@EXAMPLES
@given(data=st.binary(max_size=4000) | MIME_TREE)
# Found by hypothesis: a charset name with a NUL in it over 8-bit text (the email
# package raises when asked for the text undecoded).
@example(data=b"ContenT-type:charset=\x00\r\x80")
def test_attachment_inventory_takes_any_bytes_within_its_limits(data):
    fuzz_targets.attachments(data)


# -- inputs the fuzzer once broke the gateway with (each fixed; kept so they stay fixed) -----

REGRESSIONS = {
    # aiosmtpd echoed a bare CR of an unknown command into its reply line
    "bare CR echoed in a reply": b"EHLO a\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.c\n>o"
                                 b"\rmDATA\r\nx\n.\nMAIL",
    # non-UTF-8 bytes in an address (surrogates) broke the decision log: 451 for ever
    "8-bit bytes in a refused recipient": b"EHLO a\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@ex"
                                          b"ample.c/\x00\x00\x00\xff\xff\xff\xff\x00A\r\x08x"
                                          b"\n.\nMAIL",
    # "RCPT TO:<" made the email parser raise IndexError: 451 instead of a syntax error
    "lone angle bracket": b"EHLO a\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<\n\r\nbody\r\n.\r\n",
    # a "Subject" line without a colon broke tagging at the end of DATA: 451 for ever
    "subject line without a colon": b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT"
                                    b" TO:<bob@example.com>\r\nDATA\r\nSubject\nR: hi\r\nFrom:"
                                    b" a@remote.test\r\n\r\nbody\r\n.\r\n",
    # aiosmtpd echoes VRFY's argument; 8-bit bytes in it could not be encoded: 451
    "8-bit bytes echoed by VRFY": b"EHLO a\r\nVRFY (oE\xff\xffHLO\r\nVRFY <caf\xc3\xa9>\r\n",
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_inputs_that_once_broke_the_gateway_are_answered_clearly(name):
    fuzz_targets.smtp_session(REGRESSIONS[name])


def test_charset_with_a_nul_byte_does_not_break_part_text():
    fuzz_targets.mime_walk(b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1"
                           b"\x01\x00\r\n\r\ncaf\xe9\r\n")
