import pytest

from portcullis.addresses import (
    AddressError,
    ListEntry,
    check_address,
    clean_valid_address_line,
    normalise_domain,
)

pytestmark = pytest.mark.gateway


@pytest.mark.parametrize(("line", "expected"), [
    ("user@domain.com", "user@domain.com"),
    ("<user@domain.com>", "user@domain.com"),
    ('"Jane Doe" jane.doe@domain.com', "jane.doe@domain.com"),
    ("Jane Doe <jane.doe@domain.com>", "jane.doe@domain.com"),
    ('"Doe, Jane" <Jane.Doe@Domain.COM>', "jane.doe@domain.com"),
    ("  bob@domain.com  ", "bob@domain.com"),
    ("", None),
    ("# a comment", None),
])
def test_valid_address_lines_are_cleaned_as_the_faq_says(line, expected):
    assert clean_valid_address_line(line) == expected


@pytest.mark.parametrize("line", [
    "just some words", "two@a.com three@b.com", "<unclosed@domain.com", "no-at-sign",
    "bad..dots@domain.com", "user@-bad-.com", "user@localhost",
])
def test_unusable_lines_are_refused_with_a_reason(line):
    with pytest.raises(AddressError):
        clean_valid_address_line(line)


def test_list_entries_are_ip_networks_domains_or_addresses():
    assert ListEntry.parse("10.1.2.3").kind == "ip"
    assert ListEntry.parse("10.1.2.0/24").network is not None
    assert ListEntry.parse("2001:db8::/32").kind == "ip"
    assert ListEntry.parse("PushySender.com").text == "pushysender.com"
    assert ListEntry.parse("spam@pushysender.com").kind == "address"
    with pytest.raises(AddressError):
        ListEntry.parse("not a domain")


def test_international_domains_are_stored_in_ascii():
    assert normalise_domain("Bücher.de") == "xn--bcher-kva.de"
    assert check_address("Anna@Bücher.de") == "anna@xn--bcher-kva.de"
