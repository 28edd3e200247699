"""The gateway's quick reading of MAIL FROM / RCPT TO paths must agree with aiosmtpd's
(the email package's parser) on every argument, quick path or not."""

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from portcullis.smtp.server import _SIMPLE_PATH, GatewaySMTP

pytestmark = pytest.mark.gateway

# Pieces that make paths, their near misses (quoting, comments, source routes, literals,
# stray dots and blanks) and the ESMTP parameters that follow them.
PIECES = st.sampled_from([
    "<", ">", "@", ".", "..", "-", " ", "\t", "(", ")", '"', "\\", "[", "]", ",", ":", ";",
    "a", "Bob", "x.y", "z-9", "+tag", "!#$%&'*/=?^_`{|}~", "é", "example.com",
    "<a@b.c>", "<@relay.example:u@d.example>", "[192.0.2.1]", " SIZE=100", " BODY=8BITMIME",
])
ARGUMENTS = st.lists(PIECES, max_size=10).map("".join)


def aiosmtpd_reading(arg: str, limit: int) -> tuple[str | None, str | None]:
    server = object.__new__(SMTP)
    server.local_part_limit = limit
    try:
        return SMTP._getaddr(server, arg)
    except Exception:      # the parser's own bugs: GatewaySMTP answers "malformed address"
        return None, None


@settings(max_examples=3000)
@given(arg=ARGUMENTS, limit=st.sampled_from([0, 3, 64]))
@example(arg="<a@b.c> SIZE=1", limit=0)
@example(arg="<a@b.c> (comment) SIZE=1", limit=0)
@example(arg="<a@b.c>(unclosed", limit=0)
@example(arg=" \t<Bob.x+tag@mail.example.com>\t BODY=8BITMIME ", limit=0)
@example(arg="<toolong@b.c>", limit=3)
@example(arg="<a..b@c.d>", limit=0)
@example(arg="<a@-c.d>", limit=0)
@example(arg="a@[ ", limit=0)
@example(arg="<@[ ", limit=0)
@example(arg="a@[", limit=0)
def test_paths_read_as_aiosmtpd_reads_them(arg, limit):
    gateway = object.__new__(GatewaySMTP)
    gateway.local_part_limit = limit
    assert gateway._getaddr(arg) == aiosmtpd_reading(arg, limit)


@pytest.mark.parametrize("arg", ["<load@bench.test>", "<first.last+tag@mail.example.com>",
                                 " <a@b.c> SIZE=1000"])
def test_everyday_paths_take_the_quick_reading(arg):
    assert _SIMPLE_PATH.match(arg)
