"""A domain administrator's greylist entries: the recipient's domain is compared in the
form domains are stored in (A-labels, lower case), whichever spelling the client used."""

from __future__ import annotations

import pytest

from portcullis.checks.greylist import Greylist, GreylistPolicy
from portcullis.store import open_store

pytestmark = pytest.mark.webui

POLICY = GreylistPolicy(delay=60, window=3600, expiry=86400, awl_passes=0)
BUECHER = "xn--bcher-kva.example"            # bücher.example as domains are stored
RECIPIENTS = {
    "alice@bücher.example": BUECHER,          # SMTPUTF8 client: U-labels
    "bob@xn--bcher-kva.example": BUECHER,
    "carol@BÜCHER.Example": BUECHER,          # capitals beyond ASCII
    "dave@other.example": "other.example",
    "erin@sub.bücher.example": "sub.xn--bcher-kva.example",   # not the domain itself
    "frank@bücher.example.evil": "xn--bcher-kva.example.evil",
    "gina@notbücher.example": "xn--notbcher-95a.example",
}


@pytest.fixture
def greylist(tmp_path) -> Greylist:
    greylist = Greylist(open_store(tmp_path))
    for n, recipient in enumerate(RECIPIENTS):
        greylist.consult("192.0.2.0/24", "news@sender.test", recipient, POLICY, 1000.0 + n)
    return greylist


def _recipients(greylist: Greylist, domains: list[str]) -> set[str]:
    return {e["recipient"] for e in greylist.entries(100, domains=domains)}


def test_the_store_gives_an_addresses_domain_in_its_stored_form(tmp_path) -> None:
    store = open_store(tmp_path)
    for address, domain in RECIPIENTS.items():
        assert store.scalar("SELECT domain_of(?)", (address,)) == domain, address
    assert store.scalar("SELECT domain_of(NULL)") is None
    assert store.scalar("SELECT domain_of('no-at-sign')") == "no-at-sign"


@pytest.mark.parametrize("domain", [BUECHER, "bücher.example", "BÜCHER.example"])
def test_a_domain_admin_sees_their_idn_domains_entries_in_either_spelling(
        greylist: Greylist, domain: str) -> None:
    assert _recipients(greylist, [domain]) == {
        "alice@bücher.example", "bob@xn--bcher-kva.example", "carol@bücher.example"}


def test_a_domain_admin_of_another_domain_sees_none_of_them(greylist: Greylist) -> None:
    assert _recipients(greylist, ["other.example"]) == {"dave@other.example"}
    assert _recipients(greylist, ["third.example"]) == set()
    assert _recipients(greylist, []) == set()
    assert len(greylist.entries(100)) == len(RECIPIENTS)       # the super administrator
