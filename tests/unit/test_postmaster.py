"""Where RCPT TO:<postmaster> without a domain goes (RFC 5321 4.5.1: it MUST be accepted)."""

import pytest

from portcullis.config import ConfigError, SmtpConfig, parse
from portcullis.directory import domains
from portcullis.directory.snapshot import load_snapshot
from portcullis.smtp.recipients import is_bare_postmaster, postmaster_address
from portcullis.store import open_store

pytestmark = pytest.mark.gateway


@pytest.fixture
def snapshot(tmp_path):
    store = open_store(tmp_path)
    domains.add_domain(store, "example.com", "10.0.1.2:25")
    domains.add_domain(store, "mail.example.net", "10.0.1.3:25")
    config = parse({"smtp": {"listen": "127.0.0.1:25"}, "web": {"listen": "127.0.0.1:80"},
                    "store": {"dir": str(tmp_path)}})
    return load_snapshot(store, config)


@pytest.mark.parametrize("written", ["postmaster", "Postmaster", "POSTMASTER"])
def test_the_bare_postmaster_is_recognised_in_any_case(written):
    assert is_bare_postmaster(written)


@pytest.mark.parametrize("written", ["postmaster@example.com", "postmasters", "webmaster"])
def test_other_recipients_are_not_the_bare_postmaster(written):
    assert not is_bare_postmaster(written)


@pytest.mark.parametrize(("hostname", "expected"), [
    ("mx.example.com", "postmaster@example.com"),           # the domain it lies in
    ("a.b.example.com", "postmaster@example.com"),
    ("mail.example.net", "postmaster@mail.example.net"),    # the hostname itself
    ("mx.example.net", None),                               # example.net is not protected
    ("gateway", None),
])
def test_without_a_setting_it_is_the_postmaster_of_the_hostnames_protected_domain(
        snapshot, hostname, expected):
    assert postmaster_address(snapshot, "", hostname) == expected


def test_the_configured_address_wins_and_must_be_at_a_protected_domain(snapshot):
    assert postmaster_address(snapshot, "hostmaster@mail.example.net", "mx.example.com") \
        == "hostmaster@mail.example.net"
    assert postmaster_address(snapshot, "admin@elsewhere.org", "mx.example.com") is None


def test_the_setting_is_an_address():
    assert SmtpConfig(listen=(), postmaster="HostMaster@Example.COM").postmaster \
        == "hostmaster@example.com"
    with pytest.raises(ConfigError, match="postmaster"):
        parse({"smtp": {"listen": "127.0.0.1:25", "postmaster": "root"},
               "web": {"listen": "127.0.0.1:80"}, "store": {"dir": "/tmp"}})
