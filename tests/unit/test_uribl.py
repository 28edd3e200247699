"""Which domains of a message's links the URI blocklist check looks up."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from portcullis.checks.base import Context
from portcullis.checks.uribl import link_domains

pytestmark = pytest.mark.defenses


def looked_up(text: str, own: tuple[str, ...] = ()) -> list[str]:
    content = ("From: a@b.test\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
               f"{text}\r\n").encode()
    ctx = Context(client_ip="192.0.2.1", content=content,
                  snapshot=SimpleNamespace(domains=list(own), settings={}))
    return link_domains(ctx, [])


@pytest.mark.parametrize(("text", "domains"), [
    ("http://evil-phish.example/login", ["evil-phish.example"]),
    # Browsers percent-decode the host (WHATWG URL).
    ("http://evil-phish%2Eexample/login", ["evil-phish.example"]),
    ("https://login.EVIL%2dphish%2eexample:443/x", ["evil-phish.example"]),
    ("http://b%C3%BCcher.example/", ["xn--bcher-kva.example"]),
    ("www.evil-phish%2Eexample/", ["evil-phish.example"]),
    # Text stuck to a link still names the domain it did before.
    ("see http://shop.example%20today", ["shop.example"]),
    ("http://%zz.example/", []),                  # no host a browser would accept
])
def test_uribl_link_hosts_are_read_as_browsers_read_them(text: str,
                                                         domains: list[str]) -> None:
    assert looked_up(text) == domains


def test_uribl_percent_encoded_own_domains_are_still_never_looked_up() -> None:
    assert looked_up("http://portal%2Eours.example/ http://x.test/",
                     own=("ours.example",)) == ["x.test"]
