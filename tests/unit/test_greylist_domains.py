"""A domain administrator's greylist entries: the recipient's domain is compared in the
form domains are stored in (A-labels, lower case), whichever spelling the client used."""

from __future__ import annotations

import json

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


def _show(tmp_path, capsys, *args: str) -> tuple[int, str, str]:
    from portcullis.cli.main import main
    cfg = tmp_path / "portcullis.toml"
    cfg.write_text(f'[smtp]\nlisten = "127.0.0.1:1"\n[web]\nlisten = "127.0.0.1:1"\n'
                   f'[store]\ndir = "{tmp_path}"\n')
    try:
        status = main(["greylist", "show", "--config", str(cfg), "--json", *args])
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("domain", [BUECHER, "bücher.example", " BÜCHER.Example. "])
def test_cli_greylist_show_reads_a_domain_as_the_web_ui_stores_it(
        greylist: Greylist, tmp_path, capsys, domain: str) -> None:
    status, out, _ = _show(tmp_path, capsys, "--domain", domain)
    assert status == 0
    assert {e["recipient"] for e in json.loads(out)["entries"]} == {
        "alice@bücher.example", "bob@xn--bcher-kva.example", "carol@bücher.example"}
    status, out, _ = _show(tmp_path, capsys, "--domain", domain, "--domain", "other.example")
    assert status == 0 and len(json.loads(out)["entries"]) == 4


@pytest.mark.parametrize("garbage", ["", "%", "not a domain", "a..b", "-bad.example",
                                     "localhost", "x@bücher.example", "caf\udce9.example"])
def test_cli_greylist_show_refuses_a_domain_no_domain_can_be_called(
        greylist: Greylist, tmp_path, capsys, garbage: str) -> None:
    status, out, err = _show(tmp_path, capsys, f"--domain={garbage}")
    assert status != 0 and out == ""
    assert "argument --domain:" in err and "is not a valid domain name" in err


@pytest.mark.parametrize("limit", ["-1", "0", "nan", "1e9"])
def test_cli_greylist_show_refuses_a_limit_that_is_none(greylist: Greylist, tmp_path, capsys,
                                                        limit: str) -> None:
    # SQLite reads a negative LIMIT as none: --limit -1 printed every entry of the table,
    # which a botnet's attempts fill with hundreds of thousands.
    status, out, err = _show(tmp_path, capsys, f"--limit={limit}")
    assert status != 0 and out == "" and "argument --limit:" in err
    status, out, _ = _show(tmp_path, capsys, "--limit=2")
    assert status == 0 and len(json.loads(out)["entries"]) == 2
