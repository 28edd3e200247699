"""The zone grammar of dnsbl_zones / uribl_zones and what answer codes mean."""

from __future__ import annotations

import pytest

from portcullis.blocklists import REJECT, ZoneError, parse_zone, parse_zones
from portcullis.directory.settings import SETTINGS, SettingError

pytestmark = pytest.mark.defenses


def test_zone_without_rules_rejects_any_listing_but_error_codes() -> None:
    zone = parse_zone("zen.spamhaus.org")
    assert zone.label == "zen.spamhaus.org"
    assert zone.judge(["127.0.0.2"])[0] == REJECT
    assert zone.judge(["127.0.0.1"])[0] is None
    action, code, refused = zone.judge(["127.255.255.254"])
    assert (action, code, refused) == (None, "127.255.255.254", True)


@pytest.mark.parametrize("codes", ["127.0.0.0/7", "any", "127.0.0.1", "0.0.0.0/0"])
def test_no_rule_makes_127_0_0_1_or_an_answer_outside_127_8_a_listing(codes: str) -> None:
    zone = parse_zone(f"bl.example {codes}=reject")
    assert zone.judge(["127.0.0.1"]) == (None, "", False)
    # A resolver answering every name with an address of its own is told apart.
    assert zone.judge(["198.51.100.7"]) == (None, "198.51.100.7", True)
    assert zone.judge(["126.0.0.2", "127.0.0.2"])[0] == (None if codes == "127.0.0.1"
                                                         else REJECT)


def test_rules_map_codes_to_reject_or_scores() -> None:
    zone = parse_zone("zen.spamhaus.org name=spamhaus.org 127.0.0.2-3=reject "
                      "127.0.0.10-127.0.0.11=2.5")
    assert zone.label == "spamhaus.org" and zone.tag == "SPAMHAUS_ORG"
    assert zone.judge(["127.0.0.10"]) == (2.5, "127.0.0.10", False)
    assert zone.judge(["127.0.0.11", "127.0.0.3"])[0] == REJECT   # reject beats a score
    assert zone.judge(["127.0.0.4"])[0] is None                    # not a code we act on


def test_allow_lists_carry_negative_scores() -> None:
    zone = parse_zone("list.dnswl.org 127.0.0.0/16=-2")
    assert zone.judge(["127.0.10.1"])[0] == -2


@pytest.mark.parametrize("entry", [
    "not a zone", "zen.spamhaus.org 127.0.0.2", "zen.spamhaus.org 127.0.0.2=drop",
    "zen.spamhaus.org 127.0.0.9-3=reject", "zen.spamhaus.org name=<b>", "localhost",
    "zen.spamhaus.org 127.0.0.2=1000",
])
def test_bad_entries_are_refused_with_a_reason(entry: str) -> None:
    with pytest.raises(ZoneError):
        parse_zone(entry)


def test_the_setting_refuses_a_bad_entry_and_a_duplicate() -> None:
    with pytest.raises(SettingError, match=r"dnsbl_zones: zen\.spamhaus\.org"):
        SETTINGS["dnsbl_zones"].coerce("zen.spamhaus.org 127.0.0.2=maybe")
    with pytest.raises(ZoneError, match="listed twice"):
        parse_zones(["bl.example.org", "BL.example.org"])
    assert SETTINGS["dnsbl_zones"].coerce("a.example.org\nb.example.org any=3") == \
        ["a.example.org", "b.example.org any=3"]


def test_a_bad_zone_in_the_configuration_file_names_the_key() -> None:
    from portcullis.config import ConfigError, parse

    raw = {"smtp": {"listen": "127.0.0.1:25"}, "web": {"listen": "127.0.0.1:80"},
           "store": {"dir": "/tmp/x"}, "defenses": {"dnsbl_zones": ["zen.spamhaus.org x=y"]}}
    with pytest.raises(ConfigError, match=r"\[defenses\] dnsbl_zones: zen\.spamhaus\.org"):
        parse(raw)
