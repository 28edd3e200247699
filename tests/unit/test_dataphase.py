"""The DATA phase read in blocks (MessageCollector) must end, unstuff, refuse and leave the
client's next commands exactly as reading it line by line from aiosmtpd's StreamReader
does, however the input is cut into arrivals."""

import asyncio
import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from portcullis.smtp.dataphase import MessageCollector
from portcullis.smtp.server import READ_ALL

pytestmark = pytest.mark.gateway

LINE_LIMIT = 12
# Pieces of input: the bytes that matter to the end of DATA and to dot-stuffing, text, and
# runs long enough to pass the line limit within one arrival or across several.
PIECES = st.sampled_from([
    b"\r\n", b".", b"\r", b"\n", b"a", b"..", b".\r\n", b"\r\n.\r\n", b"text ",
    b"x" * 9, b"v" * 11, b"w" * 12, b"y" * 14, b"z" * 30, b"QUIT\r\n", b"\x00", b"\xff",
])
STREAMS = st.lists(PIECES, max_size=40).map(b"".join)


async def line_by_line(reader: asyncio.StreamReader, size_limit: int, line_limit: int
                       ) -> tuple[bytes | None, str | None]:
    """The gateway's DATA loop before block reading (and aiosmtpd's rules, but the size
    as RFC 1870 counts it: without the dots stuffing doubled, and a line's length without
    its stuffed dot): one readuntil per line; LimitOverrunError for a line over the
    reader's limit, one byte over the line limit to leave room for a stuffed dot."""
    content = bytearray()
    received = stuffed = 0
    refusal: str | None = None
    rest_of_long_line = False
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:
            refusal = refusal or f"500 5.5.2 Line too long (over {line_limit} bytes)"
            content.clear()
            received += len(await reader.read(exc.consumed))
            rest_of_long_line = True
            continue
        except asyncio.IncompleteReadError:
            return None, None                   # input ended before the message did
        received += len(line)
        if rest_of_long_line:
            rest_of_long_line = False
            continue
        if line == b".\r\n":
            break
        if refusal is not None:
            continue
        if len(line) - 2 - (line[:1] == b".") > line_limit:
            refusal = f"500 5.5.2 Line too long (over {line_limit} bytes)"
            content.clear()
            continue
        stuffed += line[:1] == b"."
        if size_limit and received - stuffed > size_limit:
            refusal = f"552 5.3.4 Message too big (over {size_limit} bytes)"
            content.clear()
        else:
            content += line[1:] if line[:1] == b"." else line
    return (None if refusal else bytes(content)), refusal


async def in_blocks(reader: asyncio.StreamReader, size_limit: int, line_limit: int
                    ) -> tuple[bytes | None, str | None]:
    """What GatewaySMTP.smtp_DATA does with the reader."""
    collector = MessageCollector(size_limit, line_limit)
    rest = None
    while rest is None:
        chunk = await reader.read(READ_ALL)
        if not chunk:
            return None, None
        rest = collector.feed(chunk)
    if rest:
        reader.feed_data(rest)
    return (None if collector.refusal else collector.message()), collector.refusal


def run(reading, arrivals: list[bytes], size_limit: int) -> tuple:
    """Feed the arrivals one at a time, each after the reader has taken what it could;
    return the reading's outcome and what it left in the reader for the next command."""
    async def main() -> tuple:
        reader = asyncio.StreamReader(limit=LINE_LIMIT + 1)
        task = asyncio.ensure_future(reading(reader, size_limit, LINE_LIMIT))
        for piece in arrivals:
            reader.feed_data(piece)
            for _ in range(3):
                await asyncio.sleep(0)
        reader.feed_eof()
        outcome = await task
        return outcome, await reader.read()
    return asyncio.run(main())


def cut(stream: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(stream), *(p % (len(stream) + 1) for p in points)})
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@given(STREAMS, st.lists(st.integers(0, 10_000), max_size=8), st.integers(0, 60))
@example(b".\r\nQUIT\r\n", [], 0)                          # an empty message
@example(b"..\r\n.a\r\n.\r\n", [1, 5], 0)                  # stuffed dots
@example(b"a\r\n.\r\nMAIL FROM:<a@b>\r\n", [4], 0)         # the end split over arrivals
@example(b"zzzzzzzzzzzzzzzzzzzzzz\r\nok\r\n.\r\n", [], 0)   # a long line, then the end
@example(b"zzzzzzzzzzzzz.\r\n.\r\n", [13], 0)              # a long line's tail is no end
@example(b"aaaaaaaaaa\r\nbbbbbbbbbb\r\nyyyyyyyyyyyyyyyy\r\n.\r\n", [], 20)  # size, then long
@example(b"yyyyyyyyyyyyyyyy\r\naaaaaaaaaa\r\nbbbbbbbbbb\r\n.\r\n", [], 20)  # long, then size
@example(b"wwwwwwwwwwww\r\n.\r\n", [13], 0)               # as long as allowed, CR apart
@example(b".wwwwwwwwwwww\r\n.\r\n", [14], 0)              # as long, behind a stuffed dot
@example(b"wwwwwwwwwwwww\r\n.\r\n", [13], 0)              # a byte longer, no dot
@example(b"aaaaaaaaaa\r\n.\r\n", [], 12)                 # exactly the size limit
@example(b"aaaaaaaaaa\r\n.\r\n", [], 11)                 # a byte over it
@example(b"..aaaaaaaa\r\n.\r\n", [], 11)                 # at it once unstuffed
@example(b"..aaaaaaaa\r\n.\r\n", [], 10)                 # over it all the same
def test_block_reading_agrees_with_line_by_line(stream: bytes, points: list[int],
                                                size_limit: int) -> None:
    arrivals = cut(stream, points)
    assert run(in_blocks, arrivals, size_limit) == run(line_by_line, arrivals, size_limit)


def test_a_refused_message_is_not_kept_while_it_is_read() -> None:
    collector = MessageCollector(size_limit=1000, line_limit=100)
    for _ in range(1000):
        assert collector.feed(b"0123456789" * 9 + b"\r\n") is None
    assert collector.refusal is not None and collector.refusal.startswith("552")
    assert len(collector._text) < 10
    assert collector.feed(b".\r\nQUIT\r\n") == b"QUIT\r\n"


def test_the_size_limit_leaves_out_the_dots_stuffing_doubled() -> None:
    """RFC 1870: a message declared (and announced) at the limit is within it, however
    many of its lines start with a dot."""
    collector = MessageCollector(size_limit=12, line_limit=100)
    assert collector.feed(b"..dot\r\n.x\r\n..\r\n.\r\n") == b""
    assert collector.refusal is None and len(collector.message()) == 12


def test_the_line_limit_leaves_out_a_stuffed_dot() -> None:
    """RFC 5321 4.5.2: the dot a client adds before a line starting with "." is not the
    message's; a line of the message at the limit is taken however it was stuffed."""
    at_limit = b"." + b"x" * 99
    collector = MessageCollector(size_limit=0, line_limit=100)
    assert collector.feed(b"." + at_limit + b"\r\n.\r\n") == b""
    assert collector.refusal is None and collector.message() == at_limit + b"\r\n"
    over = MessageCollector(size_limit=0, line_limit=100)
    assert over.feed(b".." + at_limit + b"\r\n.\r\n") == b""
    assert over.refusal is not None and over.refusal.startswith("500")
