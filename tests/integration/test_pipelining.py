"""PIPELINING (RFC 2920): command groups against the real gateway and a real Postfix."""

from __future__ import annotations

import pytest

from tests.integration.test_gateway import message, raw_session, unique, with_subject

pytestmark = pytest.mark.gateway

REFUSED = b"".join(f"RCPT TO:<u{n}@probe-{n}.test>\r\n".encode() for n in range(20))


@pytest.mark.parametrize(("before", "after", "expected"), [
    # [smtp] max_errors (20) refused recipients: the next RCPT gets 421.
    (b"MAIL FROM:<a@sender.org>\r\nRCPT TO:<bob@example.com>\r\n" + REFUSED,
     b"RCPT TO:<alice@example.com>\r\n", [b"250", b"250"] + [b"554"] * 20 + [b"421"]),
    # [smtp] max_junk_commands (100, EHLO the first): the next one gets 421.
    (b"NOOP\r\n" * 99, b"NOOP\r\nMAIL FROM:<a@sender.org>\r\nRCPT TO:<bob@example.com>\r\n",
     [b"250"] * 99 + [b"421"]),
])
def test_nothing_a_group_sends_after_a_421_is_acted_on(world, gateway, before, after,
                                                        expected):
    """The group goes on after the command that got 421 (a client that pipelines its
    message without waiting for 354): the connection is closing, so the message must not
    be delivered, nor anything else answered."""
    subject = unique("after 421")
    group = (b"EHLO client.test\r\n" + before + after + b"DATA\r\n" + message(subject)
             + b".\r\nQUIT\r\n")
    answer = raw_session(gateway, group)
    codes = [line[:3] for line in answer.split(b"\r\n") if line[3:4] == b" "]
    assert not with_subject(world.internal, "bob@example.com", subject, timeout=3)
    assert codes == [b"250", *expected], answer
