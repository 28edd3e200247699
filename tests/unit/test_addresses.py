import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from portcullis.addresses import (
    AddressError,
    ListEntry,
    check_address,
    clean_valid_address_line,
    normalise_domain,
    parse_network,
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


@pytest.mark.parametrize("text", ["a\n.example.com", "example.com\n.x", "-a.example", "a_b.example",
                                  "example", "x" * 64 + ".example"])
def test_a_name_no_host_can_have_is_not_a_domain(text):
    # A label's end is the end of the label: "a\n" passed a "$" anchored pattern (it
    # matches before a final newline), and a domain with a line break in it was stored.
    with pytest.raises(AddressError):
        normalise_domain(text)
    with pytest.raises(AddressError):
        check_address(f"bob@{text}")


@pytest.mark.parametrize("local", ["bob\n", "bob\r\n", "\nbob"])
def test_a_local_part_with_a_line_break_is_not_an_address(local):
    with pytest.raises(AddressError, match="invalid local part"):
        check_address(f"{local}@example.com")


@pytest.mark.parametrize("text", ["2001:db8::%eth0/64", "fe80::1%x", "2001:db8::%a\nb/64"])
def test_a_network_with_an_ipv6_zone_is_refused(text):
    with pytest.raises(AddressError, match="zone"):
        parse_network(text)


def test_a_local_part_beyond_ascii_can_be_listed():
    """RFC 6531: an SMTPUTF8 sender may write to jöran@; a list-only domain refused him
    because his address could not be put on its list."""
    assert check_address("Jöran@Bücher.de") == "jöran@xn--bcher-kva.de"
    assert clean_valid_address_line("Jöran Åberg <Jöran.Åberg@example.com>") == \
        "jöran.åberg@example.com"


@pytest.mark.parametrize("local", ["j\u00f6ran\u2028", "a\u00a0b", "a\u0085b", "a\u202eb",
                                   "\u00e4" * 33])
def test_a_local_part_beyond_ascii_is_printable_and_at_most_64_octets(local):
    with pytest.raises(AddressError, match="invalid local part"):
        check_address(f"{local}@example.com")


def test_international_domains_are_stored_in_ascii():
    assert normalise_domain("Bücher.de") == "xn--bcher-kva.de"
    assert check_address("Anna@Bücher.de") == "anna@xn--bcher-kva.de"


# A From header as long as the header limit lets a message have (1 MiB): before, the
# first took the quick pattern minutes (blanks on both sides of an optional part), the
# second took the email package past Python's recursion limit.
HOSTILE_ELEMENTS = ["a@b.example," + "\r\n" + " " * (1024 * 1024) + "z",
                    "(" * 100_000 + "a@b.example", "x <" + "(" * 100_000 + ">"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("value", HOSTILE_ELEMENTS, ids=["blank-run", "comments", "angled"])
def test_hostile_address_headers_are_read_in_linear_time_without_crashing(value):
    from portcullis.addresses import header_address, header_addresses
    assert ("", "a@b.example") in header_addresses([value]) or value.startswith(("(", "x"))
    header_address(value)


def test_encoded_words_are_decoded_up_to_a_bound():
    from portcullis.mime import MAX_DECODED_TEXT, decode_words
    assert decode_words("=?utf-8?q?caf=C3=A9?= ok") == "café ok"
    assert decode_words("=?x-unknown?q?a?=") == "=?x-unknown?q?a?="
    huge = decode_words("=?utf-8?q?a?= " * 100_000)   # quadratic in the email package
    assert set(huge) <= {"a", " "} and len(huge) <= MAX_DECODED_TEXT
    assert decode_words("x" * 20_000) == "x" * MAX_DECODED_TEXT   # no blank: cut at the bound


def test_international_names_are_converted_as_registries_do_idna_2008():
    # IDNA 2003 (Python's own codec) maps ß to ss: faß.de would be fass.de, another domain
    assert normalise_domain("faß.de") == "xn--fa-hia.de"
    assert normalise_domain("ΠΑΡΆΔΕΙΓΜΑς.example") == "xn--hxajbheg2az3als.example"
    with pytest.raises(AddressError):
        normalise_domain("a\u200d.de")             # a joiner out of its context


def test_one_source_is_an_ipv4_address_or_an_ipv6_slash_64():
    from portcullis.addresses import source_of
    from portcullis.smtp.server import SessionLimits
    assert source_of("192.0.2.7") == "192.0.2.7"
    assert source_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_of("2001:db8:1:2::7") == source_of("2001:db8:1:2:ffff::1") == \
        "2001:db8:1:2::/64"
    limits = SessionLimits(max_sessions=100, max_per_ip=4)
    # one IPv6 host cannot take every slot with addresses of its own /64
    admitted = [limits.admit(f"2001:db8:1:2::{n:x}") for n in range(1, 9)]
    assert admitted.count(None) == 4
    assert limits.admit("2001:db8:9::1") is None and limits.admit("192.0.2.1") is None
    for n in range(1, 5):
        limits.release(f"2001:db8:1:2::{n:x}")
    assert "2001:db8:1:2::/64" not in limits.per_ip


_LABELS = st.sampled_from(["", "a", "b", "ex", "example", "com", "A", "xn--bcher-kva"])


@given(st.lists(_LABELS, max_size=5).map(".".join),
       st.sets(st.lists(_LABELS, max_size=4).map(".".join), max_size=6))
@example("a..b", {".b"})
@example("example.com.", {""})
@settings(max_examples=3000)
def test_matches_any_is_domain_matches_over_the_patterns(domain: str, patterns: set[str]):
    from portcullis.addresses import domain_matches, matches_any
    expected = any(domain_matches(domain, pattern) for pattern in patterns)
    assert matches_any(domain, patterns) is expected
    assert matches_any(domain, dict.fromkeys(patterns)) is expected
