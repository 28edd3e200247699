"""``mime.parse_message``: the standard parser's result for real mail, and bounded work for a
message of absurdly many parts."""

import email
import email.policy
import tracemalloc
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from portcullis.antivirus.archives import Problem, inventory
from portcullis.mime import (
    MAX_PARSED_PARTS,
    MAX_PARTS,
    _body_start,
    parse_headers,
    parse_message,
    payload,
    too_many_parts,
    unparseable,
    walk,
)

pytestmark = pytest.mark.gateway

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "spamassassin"


def many_parts(count: int) -> bytes:
    head = (b"From: a@remote.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n')
    return head + b"--b\r\n\r\nx\r\n" * count + b"--b--\r\n"


def structure(message: email.message.Message) -> list:
    return [(part.get_content_type(), len(part.defects),
             None if part.is_multipart() else part.get_payload())
            for part in message.walk()]


@pytest.mark.parametrize("kind", ["ham", "spam"])
def test_real_mail_parses_as_the_email_package_parses_it(kind):
    files = sorted((CORPUS / kind).iterdir())[::20]
    assert len(files) > 50
    stored = [path.read_bytes() for path in files]
    # As stored (an mbox "From " line first), and as the gateway gets mail: no such line,
    # CRLF line ends (most of it is then split without the parser, see mime._single_part).
    smtp = [content.split(b"\n", 1)[1].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            for content in stored]
    for path, content in [*zip(files, stored, strict=True), *zip(files, smtp, strict=True)]:
        ours = parse_message(content)
        theirs = email.message_from_bytes(content, policy=email.policy.compat32)
        assert not unparseable(ours), path
        assert structure(ours) == structure(theirs), path
        assert ours.as_bytes() == theirs.as_bytes(), path


# A single-part message under well-formed fields is split without the parser
# (mime._single_part): header blocks that end oddly, or messages that are not single-part
# after all, must come out as the parser makes them.
ODD_SHAPES = [
    b"From: a@b.test\rSubject: CR line ends\r\rbody\rmore\r",
    b"From: a@b.test\r\nSubject: x\r\nFrom nobody\r\n\r\nbody\r\n",
    b"From nobody Mon\r\nFrom: a@b.test\r\nFrom other\r\nSubject: y\r\n\r\nbody\r\n",
    b"From: a@b.test\r\nSubject: no blank line\r\n",
    b"From: a@b.test\r\nSubject: no blank line\r\nbody anyway\r\n\r\nmore\r\n",
    b" continuation first\r\nFrom: a@b.test\r\n\r\nbody\r\n",
    b": no name\r\nFrom: a@b.test\r\n\r\nbody",
    b"From: a@b.test\r\nContent-Type: text/plain\r\n\n\r\nmixed line ends\r\n",
    b"From: a@b.test\nContent-Type: text/plain\n\n",
    b"\r\n\r\nbody only\r\n",
    b"From: a@b.test\r\nX: " + b"y" * 9000 + b"\r\n\r\n" + b"body \xe4\x00\r\n" * 3000,
    b"From: a@b.test\r\nContent-Type: bogus\r\n\r\nbody\r\n",
    b"From: a@b.test\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nx\r\n",
    b"From: a@b.test\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; y\r\n",
    b"From: a@b.test\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n",
]


@pytest.mark.parametrize("content", ODD_SHAPES)
def test_odd_shapes_parse_as_the_email_package_parses_them(content):
    ours = parse_message(content)
    theirs = email.message_from_bytes(content, policy=email.policy.compat32)
    assert structure(ours) == structure(theirs)
    assert ours.items() == theirs.items()
    assert ours.as_bytes() == theirs.as_bytes()


# Header blocks of well-formed fields are split by mime._single_part, the rest by the
# parser: lines of every kind either may meet, under every line end.
FIELD_NAME = st.one_of(st.sampled_from(["Subject", "content-type", "X-A", "From"]),
                       st.sampled_from(["From x", "Bad Name", "\x7f", "na\xe4me", "a\x00", ""]))
FIELD_VALUE = st.text(alphabet=" \t:ab;=\x00\xe9", max_size=6)
FIELD = st.builds(lambda name, value: f"{name}:{value}", FIELD_NAME, FIELD_VALUE)
HEADER_LINE = st.one_of(
    FIELD, FIELD,
    st.builds(lambda blank, value: blank + value, st.sampled_from([" ", "\t"]), FIELD_VALUE),
    st.sampled_from(["From nobody", ": value", "no colon", "", "Content-Type: multipart/mixed",
                     "Content-Type: message/rfc822", "Content-Type: text/plain; charset=x"]))


@settings(max_examples=1000, deadline=None)
@given(lines=st.lists(HEADER_LINE, max_size=6),
       ends=st.lists(st.sampled_from(["\r\n", "\n", "\r"]), min_size=1, max_size=3),
       body=st.text(alphabet="ab \r\n\xe9:", max_size=12))
def test_any_header_block_parses_as_the_email_package_parses_it(lines, ends, body):
    text = "".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    content = (text + ends[0] + body).encode("latin-1")
    ours = parse_message(content)
    theirs = email.message_from_bytes(content, policy=email.policy.compat32)
    assert parts(ours) == parts(theirs)
    assert [[type(d) for d in p.defects] for p in ours.walk()] == \
        [[type(d) for d in p.defects] for p in theirs.walk()]
    assert list(ours.raw_items()) == list(theirs.raw_items())
    assert ours.get_unixfrom() == theirs.get_unixfrom()
    assert written(ours) == written(theirs)


@settings(max_examples=1000, deadline=None)
@given(lines=st.lists(HEADER_LINE, max_size=6),
       ends=st.lists(st.sampled_from(["\r\n", "\n", "\r"]), min_size=1, max_size=3),
       body=st.text(alphabet="ab \r\n\xe9:", max_size=12))
# A body the email package cannot decode (a charset name with a NUL): compared as text.
@example(lines=["content-type:;charset=\x00", "no colon \xe9"], ends=["\r\n"], body="")
def test_any_header_block_alone_parses_as_the_email_package_parses_it(lines, ends, body):
    """parse_headers (unfiltered mail's subject) reads the fields the header parser does."""
    text = "".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    content = (text + ends[0] + body).encode("latin-1")
    ours = parse_headers(content)
    start = _body_start(content)
    head = content if start is None else content[:start]
    theirs = BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    assert list(ours.raw_items()) == list(theirs.raw_items())
    assert ours._payload == theirs._payload           # as stored: it may not decode
    assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]
    assert ours.get_unixfrom() == theirs.get_unixfrom()


def parts(message: email.message.Message) -> list:
    """structure(), a payload the email package cannot read (a charset name with a NUL)
    standing as its raw text."""
    return [(part.get_content_type(), len(part.defects), part.is_multipart(),
             None if part.is_multipart() else str(part._payload)) for part in message.walk()]


def written(message: email.message.Message) -> bytes | type:
    try:
        return message.as_bytes()
    except UnicodeError as exc:     # the generator refuses some 8-bit multipart bodies
        return type(exc)


def test_parsing_stops_at_the_part_limit_and_holds_little_memory():
    content = many_parts(100_000)
    tracemalloc.start()
    try:
        message = parse_message(content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert too_many_parts(message) and unparseable(message)
    assert message["Subject"] == "parts"             # the headers are kept
    # 100,000 parsed parts held about 60 MB; stopping at the limit holds a few.
    assert peak < 8 * len(content) + 10 * 1024 * 1024, peak
    cut: list[str] = []
    assert len(list(walk(message, cut))) == 1
    assert cut == [f"more than {MAX_PARTS} MIME parts"]


def test_a_message_of_too_many_parts_is_a_bomb():
    found = inventory(parse_message(many_parts(MAX_PARSED_PARTS + 1)))
    [bomb] = found.problems(Problem.BOMB)
    assert f"more than {MAX_PARTS} MIME parts" in bomb.detail


def test_parts_up_to_the_limit_are_parsed():
    message = parse_message(many_parts(MAX_PARSED_PARTS - 1))     # the root is a part too
    assert not unparseable(message)
    assert len(message.get_payload()) == MAX_PARSED_PARTS - 1


def _texts(content: bytes, limits: list[int]) -> list[list[str]]:
    from portcullis.mime import part_text
    parts = [part for _, part in walk(parse_message(content)) if not part.is_multipart()]
    return [[part_text(part, limit) for limit in limits] for part in parts]


@pytest.mark.parametrize("limits", [[512 * 1024, 800_000], [800_000, 512 * 1024],
                                    [100, 3000, 1_000_000, 100], [1_000_000, 3000, 50]])
def test_part_text_is_the_same_whatever_was_read_before(limits):
    """A part's text read whole is kept for readers with other limits: each reading is
    what that limit alone gives."""
    for path in sorted(CORPUS.glob("*/*"))[::11]:
        content = path.read_bytes()
        alone = [[texts[0] for texts in _texts(content, [limit])] for limit in limits]
        assert _texts(content, limits) == [list(t) for t in zip(*alone, strict=True)], path


@given(st.binary(max_size=300), st.lists(st.integers(0, 400), min_size=2, max_size=4),
       st.sampled_from(["base64", "quoted-printable", "8bit"]),
       st.sampled_from(["utf-8", "iso-8859-1", "x-unknown", ""]))
@settings(max_examples=500)
def test_part_text_after_other_limits_is_that_limit_s_text(body, limits, cte, charset):
    import base64
    import quopri
    encoded = base64.encodebytes(body) if cte == "base64" else \
        quopri.encodestring(body) if cte == "quoted-printable" else body
    content = (f"Content-Type: text/plain; charset={charset}\r\n"
               f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode() + encoded
    alone = [_texts(content, [limit])[0][0] for limit in limits]
    assert _texts(content, limits)[0] == alone


@pytest.mark.parametrize("charset", ["", "; charset=utf-8", "; charset=\"a\\x00\""])
@pytest.mark.parametrize("body", [b"+\x80", b"QUJD\xc3\xa9R", b"\xff\xfeQ"])
def test_base64_with_bytes_beyond_ascii_and_a_stray_character_never_raises(body, charset):
    # Found by the MIME walk's property test: the lenient decoding of a body with one
    # character too many met text beyond ASCII, or a charset Python cannot name (a NUL),
    # and raised instead of skipping what base64 does not hold.
    message = parse_message(f"Content-Type: text/plain{charset}\r\n".encode()
                            + b"Content-Transfer-Encoding: base64\r\n\r\n" + body + b"\r\n")
    assert payload(message) is None or isinstance(payload(message), bytes)
