"""The Authentication-Results field the gateway writes (RFC 8601)."""

import email

import pytest

from portcullis.mailauth.dkimverify import DkimResult
from portcullis.mailauth.dmarc import DmarcOutcome, DmarcResult
from portcullis.mailauth.results import claims_to_be_from, header_field
from portcullis.mailauth.spf import SpfOutcome, SpfResult

pytestmark = pytest.mark.defenses


def test_every_method_is_reported_with_its_identity():
    field = header_field(
        "gw.example", mail_from="news@signed.test", helo="mta.signed.test",
        spf=SpfOutcome(SpfResult.FAIL, "signed.test", "-all"),
        dkim=[DkimResult("signed.test", "sel1", "pass")],
        dmarc=DmarcOutcome(DmarcResult.PASS, "signed.test", "reject", "DKIM aligned"))
    assert field == ("Authentication-Results: gw.example; "
                     'spf=fail reason="-all" smtp.mailfrom=news@signed.test; '
                     "dkim=pass header.d=signed.test header.s=sel1; "
                     "dmarc=pass (p=reject) header.from=signed.test")


def test_null_sender_is_identified_by_helo_and_missing_signatures_say_none():
    field = header_field("gw", mail_from="", helo="mta.example.org",
                         spf=SpfOutcome(SpfResult.NONE, "mta.example.org"), dkim=[],
                         dmarc=None)
    assert field == "Authentication-Results: gw; spf=none smtp.helo=mta.example.org; dkim=none"


def test_hostile_values_cannot_add_results_or_break_the_field():
    field = header_field(
        "gw", mail_from="a@b.test", helo="h",
        spf=SpfOutcome(SpfResult.PASS, "b.test"),
        dkim=[DkimResult('evil.test; dkim=pass header.d="bank.test"', "s\r\nBcc: x", "fail",
                         "body hash (did not) verify\u00e9")],
        dmarc=None)
    parsed = email.message_from_string(field + "\r\n\r\n")
    assert len(parsed.keys()) == 1 and "\r" not in field and "\n" not in field
    assert field.count(";") == 2 + 1      # two separators, plus the one inside quotes
    assert 'header.d="evil.test; dkim=pass header.d=\\"bank.test\\""' in field
    assert 'reason="body hash (did not) verify?"' in field


@pytest.mark.parametrize(("raw", "ours"), [
    (b"Authentication-Results: gw.example; spf=pass", True),
    (b"Authentication-Results:GW.Example.; none", True),
    (b"Authentication-Results: (by us) gw.example 1; none", True),
    (b"Authentication-Results: gw.example.evil; none", False),
    (b"Authentication-Results: mx.other; spf=pass (gw.example)", False),
    (b"Authentication-Results:", False),
])
def test_authserv_id_is_read_past_comments_case_and_version(raw, ours):
    assert claims_to_be_from(raw, "gw.example") is ours


def test_each_part_of_authentication_is_bounded_and_falls_back_alone():
    import asyncio
    from types import SimpleNamespace

    from portcullis.checks.authentication import Authentication

    check = Authentication(SimpleNamespace(config=SimpleNamespace(
        dns=SimpleNamespace(timeout=0.01))))     # a budget of 4 resolver timeouts: 0.04 s
    cancelled = []

    async def silent():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "late"

    async def prompt():
        await asyncio.sleep(0)
        return "answer"

    async def both():
        return await check._together((silent(), "fallback"), (prompt(), "unused"))

    assert asyncio.run(both()) == ["fallback", "answer"]
    assert cancelled == [True]          # the silent part was stopped, not left running


def test_together_keeps_the_order_and_cancels_the_others_when_the_first_fails():
    import asyncio
    import contextlib
    from types import SimpleNamespace

    from portcullis.checks.authentication import Authentication

    check = Authentication(SimpleNamespace(config=SimpleNamespace(
        dns=SimpleNamespace(timeout=1.0))))

    async def value(v, delay=0.0):
        await asyncio.sleep(delay)
        return v

    async def broken():
        raise RuntimeError("broken")

    async def run():
        assert await check._together((value(1, 0.02), 0), (value(2), 0),
                                     (value(3, 0.01), 0)) == [1, 2, 3]
        assert await check._together() == []
        slow = value(4, 5)
        with contextlib.suppress(RuntimeError):
            await check._together((broken(), 0), (slow, 0))
        await asyncio.sleep(0.01)
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert asyncio.run(run()) == []
