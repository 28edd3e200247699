"""Which domains of a message's links the URI blocklist check looks up."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from portcullis.checks.base import Context
from portcullis.checks.uribl import link_domains

pytestmark = pytest.mark.defenses


def looked_up(text: str, own: tuple[str, ...] = (), subtype: str = "plain") -> list[str]:
    content = (f"From: a@b.test\r\nContent-Type: text/{subtype}; charset=utf-8\r\n\r\n"
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
    # A backslash ends the user part and the host: the browser opens evil.example.
    ("http://evil-phish.example\\@bank.example/", ["evil-phish.example"]),
    ("http:\\\\evil-phish.example\\login", ["evil-phish.example"]),
    # A name ending in a number is an IPv4 address, never a domain to look up.
    ("http://0x7f.1/ http://10.0.0.1/", []),
])
def test_uribl_link_hosts_are_read_as_browsers_read_them(text: str,
                                                         domains: list[str]) -> None:
    assert looked_up(text) == domains


def test_uribl_percent_encoded_own_domains_are_still_never_looked_up() -> None:
    assert looked_up("http://portal%2Eours.example/ http://x.test/",
                     own=("ours.example",)) == ["x.test"]


@pytest.mark.parametrize("html", [
    # Character references in an attribute or in the text are undone by the browser.
    '<a href="https&#58;//evil-phish.example/login">bank</a>',
    '<a href="&#104;&#116;&#116;&#112;&#58;&#47;&#47;evil-phish.example">bank</a>',
    '<a href="http://evil-phish&#46;example/">bank</a>',
    'visit http&#x3a;&#x2f;&#x2f;evil-phish.example today',
    # After a web scheme, any number of slashes or backslashes (or none) in a link.
    '<a href="https:\\\\evil-phish.example\\login">bank</a>',
    '<a href="https:/evil-phish.example/login">bank</a>',
    '<a href=https:evil-phish.example/login>bank</a>',
    # A scheme-relative link, and tabs or line breaks inside the value.
    "<a href='//evil-phish.example/login'>bank</a>",
    '<a href="ht\ttps://evil-\r\nphish.example/">bank</a>',
    '<form action=" https://evil-phish.example/post"><input></form>',
])
def test_uribl_links_in_html_are_read_as_browsers_read_them(html: str) -> None:
    assert looked_up(html, subtype="html") == ["evil-phish.example"]


def test_uribl_a_thousand_repeats_of_one_link_do_not_hide_the_next() -> None:
    assert looked_up("http://a.example/ " * 1000 + "http://evil-phish.example/") == \
        ["a.example", "evil-phish.example"]
