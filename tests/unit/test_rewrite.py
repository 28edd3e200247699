import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from portcullis.policy import Decision, Symbol, Verdict
from portcullis.smtp.rewrite import received_header, rewrite, split_message, status_headers

pytestmark = pytest.mark.gateway


def test_tag_prefixes_the_subject_and_keeps_the_rest_byte_for_byte():
    body = b"\r\nline one\r\n\r\nline three\r\n"
    content = b"From: a@b.c\r\nSubject: Hello\r\n there\r\nDKIM-Signature: v=1\r\n" + body
    out = rewrite(content, prepend=[], tag_phrase="[SPAM?]", authserv_id="gw")
    assert out == (b"From: a@b.c\r\nSubject: [SPAM?] Hello\r\n there\r\n"
                   b"DKIM-Signature: v=1\r\n" + body)


def test_tag_adds_a_subject_when_there_is_none_and_is_not_doubled():
    out = rewrite(b"From: a@b.c\r\n\r\nbody\r\n", prepend=[], tag_phrase="[SPAM?]",
                  authserv_id="gw")
    assert b"Subject: [SPAM?]\r\n" in out
    again = rewrite(out, prepend=[], tag_phrase="[SPAM?]", authserv_id="gw")
    assert again.count(b"[SPAM?]") == 1


def test_senders_copies_of_our_status_headers_are_removed():
    content = b"X-Spam-Status: No, score=-100\r\nX-Spam-Flag: NO\r\nSubject: s\r\n\r\nb\r\n"
    decision = Decision(Verdict.TAG, 6.0, "", (Symbol("TEST", 6.0),))
    out = rewrite(content, prepend=status_headers(decision, 5.0, "gw"), tag_phrase=None,
                  authserv_id="gw")
    assert b"score=-100" not in out and b"X-Spam-Flag: NO" not in out
    assert out.startswith(b"X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=6.0")


def test_long_status_headers_are_folded_below_78_columns():
    symbols = tuple(Symbol(f"SYMBOL_NUMBER_{i}", 0.5) for i in range(20))
    for line in status_headers(Decision(Verdict.ACCEPT, 1.0, "", symbols), 5.0, "gw"):
        assert all(len(part) <= 80 for part in line.split(b"\r\n"))


def test_received_header_neutralises_hostile_helo():
    header = received_header(helo="evil\r\nBcc: x", client_ip="192.0.2.1", hostname="gw",
                             queue_id="id1", recipient="a@b.c")
    assert b"\r\nBcc" not in header


def test_authentication_results_claiming_to_be_ours_are_removed_and_others_kept():
    content = (b"Authentication-Results: GW. (forged); spf=pass smtp.mailfrom=a@b.c\r\n"
               b"Authentication-Results: (comment first)\r\n gw; dkim=pass header.d=b.c\r\n"
               b"Authentication-Results: mx.elsewhere.example; spf=fail\r\n"
               b"Authentication-Results: gw.other; dmarc=pass\r\n"
               b"Subject: s\r\n\r\nbody\r\n")
    out = rewrite(content, prepend=[], tag_phrase=None, authserv_id="gw")
    assert out == (b"Authentication-Results: mx.elsewhere.example; spf=fail\r\n"
                   b"Authentication-Results: gw.other; dmarc=pass\r\n"
                   b"Subject: s\r\n\r\nbody\r\n")


def test_a_leading_continuation_line_does_not_join_the_gateways_own_header():
    content = b" injected: continuation\r\nSubject: s\r\n\r\nbody\r\n"
    out = rewrite(content, prepend=[b"X-Portcullis-Verdict: accept (gw)"], tag_phrase=None,
                  authserv_id="gw")
    assert out == b"X-Portcullis-Verdict: accept (gw)\r\nSubject: s\r\n\r\nbody\r\n"


def test_the_header_section_ends_at_the_first_line_that_is_no_field():
    # no blank line after the header: readers take "Hello body" as the body's start
    content = b"From: a@b.c\r\nHello body\r\nSubject: not a header\r\n\r\nmore\r\n"
    out = rewrite(content, prepend=[b"X-Spam-Flag: YES"], tag_phrase="[SPAM?]",
                  authserv_id="gw")
    assert out == (b"X-Spam-Flag: YES\r\nFrom: a@b.c\r\nSubject: [SPAM?]\r\n\r\n"
                   b"Hello body\r\nSubject: not a header\r\n\r\nmore\r\n")
    from email import message_from_bytes
    assert message_from_bytes(out)["Subject"] == "[SPAM?]"


def test_every_subject_field_is_tagged_and_an_mbox_from_line_stays_in_the_header():
    content = b"From sender@b.c Sun Nov 29 10:00:00 2026\r\nSubject: one\r\nSubject: two\r\n\r\nb"
    out = rewrite(content, prepend=[], tag_phrase="[SPAM?]", authserv_id="gw")
    assert out == (b"From sender@b.c Sun Nov 29 10:00:00 2026\r\nSubject: [SPAM?] one\r\n"
                   b"Subject: [SPAM?] two\r\n\r\nb")


def test_authentication_results_forged_with_a_quoted_id_or_nested_comments_are_removed():
    """RFC 8601 section 5: every copy naming our authserv-id goes, however the sender
    writes it: a quoted-string is the same value, and comments nest."""
    content = (b'Authentication-Results: "gw"; dkim=pass header.d=bank.example\r\n'
               b'Authentication-Results: "g\\w" (x); spf=pass\r\n'
               b"Authentication-Results: ((nested) comment) gw; dmarc=pass\r\n"
               b"Authentication-Results: (a \\) b)\r\n\tGW.; arc=pass\r\n"
               + b"Authentication-Results: " + b"(" * 5000 + b")" * 5000 + b" gw; x=y\r\n"
               b'Authentication-Results: "gw.other"; spf=fail\r\n'
               b"Subject: s\r\n\r\nbody\r\n")
    out = rewrite(content, prepend=[], tag_phrase=None, authserv_id="gw")
    assert out == (b'Authentication-Results: "gw.other"; spf=fail\r\n'
                   b"Subject: s\r\n\r\nbody\r\n")


def test_every_x_spam_and_x_portcullis_field_from_the_sender_is_removed():
    content = (b"X-Spam-Level: \r\nX-Spam-Report: clean\r\n\tno rules hit\r\n"
               b"x-spam-checker-version: SpamAssassin 4.0.0\r\n"
               b"X-Portcullis-Released: 20261130T000000-0 by admin\r\n"
               b"X-Spamd-Result: default: False [0.00 / 15.00]\r\nSubject: s\r\n\r\nb\r\n")
    out = rewrite(content, prepend=[], tag_phrase=None, authserv_id="gw")
    assert out == b"X-Spamd-Result: default: False [0.00 / 15.00]\r\nSubject: s\r\n\r\nb\r\n"


def test_received_header_names_the_protocol_smtputf8_and_tls_included():
    def protocol(**kwargs: bool) -> bytes:
        header = received_header(helo="c", client_ip="192.0.2.1", hostname="gw",
                                 queue_id="id1", recipient=None, **kwargs)
        return header.replace(b"\r\n\t", b" ").split(b" with ")[1].split()[0]

    assert protocol() == b"ESMTP" and protocol(tls=True) == b"ESMTPS"
    assert protocol(smtputf8=True) == b"UTF8SMTP"                     # RFC 6531 3.7.3
    assert protocol(smtputf8=True, tls=True) == b"UTF8SMTPS"


@pytest.mark.parametrize(("subject", "shown"), [
    (b"Hello there", "[Verdächtig] Hello there"),
    (b"=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Bern", "[Verdächtig] Grüße aus Bern"),
    (b"\r\n =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Bern", "[Verdächtig] Grüße aus Bern"),
    (None, "[Verdächtig]"),
])
def test_a_tag_phrase_beyond_ascii_is_an_encoded_word_and_reads_right(subject, shown):
    from email import message_from_bytes, policy
    content = (b"Subject: " + subject + b"\r\n" if subject else b"") + b"From: a@b.c\r\n\r\nb"
    out = rewrite(content, prepend=[], tag_phrase="[Verdächtig]", authserv_id="gw")
    assert out.split(b"\r\n\r\n")[0].isascii()           # no raw UTF-8 without SMTPUTF8
    assert message_from_bytes(out, policy=policy.default)["Subject"] == shown
    assert rewrite(out, prepend=[], tag_phrase="[Verdächtig]", authserv_id="gw") == out


@pytest.mark.parametrize(("client_ip", "literal"), [
    ("192.0.2.1", b"([192.0.2.1])"), ("2001:db8::25", b"([IPv6:2001:db8::25])")])
def test_received_header_writes_the_client_as_an_address_literal(client_ip, literal):
    header = received_header(helo="c.example", client_ip=client_ip, hostname="gw",
                             queue_id="id1", recipient=None)
    assert header.startswith(b"Received: from c.example " + literal + b" by gw ")


def _split_line_by_line(content: bytes) -> tuple[bytes, bytes]:
    """split_message as it was written first, a match and a find a line: the reference."""
    import re
    field_line = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t]|From ")
    position = 0
    while position < len(content):
        if not field_line.match(content, position):
            break
        end = content.find(b"\r\n", position)
        if end < 0:
            return content, b""
        position = end + 2
    return content[:position], content[position:]


_PIECES = [b"\r\n", b"\r", b"\n", b":", b" ", b"\t", b"From ", b"From", b"Subject", b"X-a",
           b"\x00", b"\x7f", b"\xe9", b"body", b"@"]


@given(st.lists(st.sampled_from(_PIECES) | st.binary(max_size=4), max_size=40))
@example([b"Subject", b":", b" ", b"x", b"\r", b"\r\n", b"\r\n", b"body"])
@example([b"From ", b"x", b"\r\n", b" ", b"y"])
@settings(max_examples=3000)
def test_split_message_is_the_line_by_line_reading(pieces: list[bytes]) -> None:
    content = b"".join(pieces)
    assert split_message(content) == _split_line_by_line(content)


def test_split_message_is_the_line_by_line_reading_on_the_corpus() -> None:
    from bench.scoring import CORPUS
    corpus = sorted((CORPUS / "spamassassin").glob("*/*"))
    if not corpus:
        pytest.skip("no corpus")
    for path in corpus[::7]:
        raw = path.read_bytes()
        for content in (raw, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")):
            assert split_message(content) == _split_line_by_line(content), path


_FIELD_PIECES = [b"X-Spam-", b"x-spam-flag", b"X-Portcullis-", b"Authentication-Results",
                 b"authentication-RESULTS", b":", b" ", b"\t", b"\x0b", b"gw", b";",
                 b"gw.example", b"spf=pass", b"Subject", b"A", b"x", b"\r\n", b"\xff"]


@given(st.lists(st.sampled_from(_FIELD_PIECES) | st.binary(max_size=3), max_size=12),
       st.sampled_from(["gw", "gw.example"]))
@example([b"\x0b", b"X-Spam-", b":"], "gw")
@settings(max_examples=3000)
def test_own_fields_are_recognised_as_by_their_name(pieces: list[bytes], ours: str) -> None:
    from portcullis.mailauth.results import claims_to_be_from
    from portcullis.smtp.rewrite import OWN_HEADER_PREFIXES, _forged

    field = b"".join(pieces)
    name = field.split(b":", 1)[0].strip().lower()
    expected = name.startswith(OWN_HEADER_PREFIXES) or (
        name == b"authentication-results" and claims_to_be_from(field, ours))
    assert _forged(field, ours) == expected
