"""Site values of the firewall: odd or hostile [firewall] settings are refused, naming the
key, before they reach the ruleset."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from portcullis import config as configuration
from portcullis.firewall import FirewallError, SiteValues
from portcullis.firewall.ruleset import SCANNER_MARKS, render, scanner_marks_per_minute

pytestmark = pytest.mark.firewall

RULESET = Path(__file__).parents[2] / "firewall" / "portcullis.nft"


def site(**values: object) -> SiteValues:
    return SiteValues.from_config(configuration.FirewallConfig(**values))  # type: ignore[arg-type]


@pytest.mark.parametrize(("netblock", "why"), [
    ("0.0.0.0/0", "too broad"),                     # SSH open to every IPv4 source
    ("::/0", "too broad"),
    ("64.0.0.0/2", "too broad"),
    ("::ffff:207.219.44.0/120", "IPv4-mapped"),     # matched no IPv4 packet: vendor shut out
    ("2001:db8:44::%eth0/64", "zone"),
    ("127.0.0.0/8", "not a network the vendor"),
    ("fe80::/64", "not a network the vendor"),
    ("224.0.0.0/8", "not a network the vendor"),
    ("0.0.0.0/8", "not a network the vendor"),
    ("198.51.100.7/24", "host bits set"),           # one rule with the update agent's
])
def test_vendor_netblocks_that_open_ssh_wide_or_match_nothing_are_refused(netblock, why):
    with pytest.raises(FirewallError, match=rf"\[firewall\] vendor_netblocks: .*{why}"):
        site(vendor_netblocks=("207.219.44.0/24", netblock))


def test_ordinary_vendor_netblocks_are_accepted():
    values = site(vendor_netblocks=("10.0.0.0/8", "198.51.100.0/24", "2001:db8::/32"))
    assert [str(n) for n in values.vendor_v4] == ["10.0.0.0/8", "198.51.100.0/24"]
    assert [str(n) for n in values.vendor_v6] == ["2001:db8::/32"]


@pytest.mark.parametrize("port", [22, 25, 80, 443])
def test_tarpit_port_may_not_be_a_port_the_firewall_serves(port):
    # 25: every scanner's knock on a closed port would be sent to the mail gateway.
    with pytest.raises(FirewallError, match=rf"\[firewall\] tarpit_port: {port} is a port"):
        render(RULESET.read_text(), site(tarpit_port=port))


@pytest.mark.parametrize("key", ["ssh_block_minutes", "scanner_minutes"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_times_are_refused_naming_the_key(key, value):
    with pytest.raises(FirewallError, match=rf"\[firewall\] {key}"):
        site(**{key: value})


@pytest.mark.parametrize("seconds", [1, 30, 59, 60, 61, 3600, 86400, 7 * 86400])
def test_forged_scanners_can_never_fill_the_scanner_sets(seconds):
    """New scanners are marked at most at a rate whose burst plus a scanner_timeout's
    worth stays under the sets' 65,536 entries (forged knocks make anyone a scanner)."""
    per_minute = scanner_marks_per_minute(seconds)
    assert per_minute >= 1
    assert per_minute + per_minute * seconds / 60 <= SCANNER_MARKS < 65536
    text = render(RULESET.read_text(), site(scanner_minutes=seconds / 60))
    assert f"limit rate over {per_minute}/minute burst {per_minute} packets counter name " \
           "scanner_mark_capped" in text
