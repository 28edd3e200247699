"""The ruleset file and its site values: rendering, and checking without root."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from portcullis import config as configuration
from portcullis.firewall import FirewallError, SiteValues
from portcullis.firewall.check import check_ruleset
from portcullis.firewall.ruleset import render
from tests.integration.firewall.conftest import REPO, RULESET

pytestmark = pytest.mark.firewall

SITE = SiteValues.from_config(configuration.FirewallConfig(
    vendor_netblocks=("198.51.100.0/24", "198.51.100.128/25", "2001:db8:44::/64"),
    ssh_rate=7, ssh_block_minutes=2, scan_log_rate=9, scan_log_group=33,
    scanner_minutes=0.5, tarpit_port=4444))

DROP_TO_NOBODY_AND_CHECK = """
import os, sys
from portcullis import config
from portcullis.firewall import check
cfg = config.load(sys.argv[1])
os.setgroups([]); os.setgid(65534); os.setuid(65534)
assert os.geteuid() == 65534
try:
    check(cfg)
except Exception as exc:
    print(exc); sys.exit(1)
print("valid")
"""


def test_site_values_replace_every_default():
    text = render(RULESET.read_text(), SITE)
    assert "define vendor_v4 = { 198.51.100.0/24 }" in text   # overlapping nets merged
    assert "define vendor_v6 = { 2001:db8:44::/64 }" in text
    assert "define tarpit_port = 4444" in text
    assert text.count("limit rate over 7/minute burst 7 packets") == 2
    assert text.count("timeout 120s  # site: ssh_block") == 2
    assert text.count("timeout 30s  # site: scanner_timeout") == 2
    assert text.count("limit rate 9/minute burst 9 packets") == 2
    assert text.count("group 33") == 2
    check_ruleset(text)


def test_syn_proxy_is_a_site_value():
    on = render(RULESET.read_text(), SITE)
    assert "define syn_proxy_ports = $public_tcp_ports" in on
    off = render(RULESET.read_text(), dataclasses.replace(SITE, syn_proxy=False))
    assert "define syn_proxy_ports = { }" in off
    check_ruleset(off)


def test_ruleset_without_a_site_value_is_refused():
    text = RULESET.read_text().replace("timeout 1h  # site: scanner_timeout",
                                       "timeout 1h")
    with pytest.raises(FirewallError, match="lacks the site values scanner_timeout"):
        render(text, SITE)


def test_site_mark_on_a_line_without_its_value_is_refused():
    text = RULESET.read_text().replace("timeout 10m  # site: ssh_block",
                                       "# site: ssh_block", 1)
    with pytest.raises(FirewallError, match="site mark 'ssh_block' expects exactly one"):
        render(text, SITE)


def test_bad_site_values_are_refused_naming_the_key():
    with pytest.raises(FirewallError, match=r"\[firewall\] vendor_netblocks: 'vendor.example'"):
        SiteValues.from_config(configuration.FirewallConfig(
            vendor_netblocks=("vendor.example",)))
    with pytest.raises(FirewallError, match=r"\[firewall\] ssh_rate: must be between"):
        SiteValues.from_config(configuration.FirewallConfig(ssh_rate=0))
    with pytest.raises(FirewallError, match=r"\[firewall\] ssh_block_minutes"):
        SiteValues.from_config(configuration.FirewallConfig(ssh_block_minutes=0))


def test_check_mode_reports_nfts_complaint_with_the_line(site, tmp_path):
    broken = tmp_path / "broken.nft"
    broken.write_text(RULESET.read_text().replace("counter name public_accepted accept",
                                                  "counter name public_acepted accept"))
    site.write_config()
    result = site.cli("firewall", "check", "--ruleset", str(broken), check=False)
    assert result.returncode == 1
    assert "public_acepted" in result.stderr and "ruleset:" in result.stderr
    assert "is valid" in site.cli("firewall", "check").stdout


def test_check_mode_needs_no_root(site):
    path = site.write_config(vendor_netblocks=["207.219.44.0/24", "2001:db8:44::/64"])
    result = subprocess.run([sys.executable, "-c", DROP_TO_NOBODY_AND_CHECK, str(path)],
                            capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert result.stdout.strip() == "valid", result.stdout + result.stderr
