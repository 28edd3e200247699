"""The loader's last resort: when neither the ruleset with this site's values nor the
reviewed ruleset with its defaults loads, the fail-safe ruleset keeps the appliance serving
mail and the web UI, SSH for the vendor, and nothing else open."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import jinja2
import pytest
import yaml

from tests.integration.firewall.conftest import (
    APPLIANCE,
    APPLIANCE6,
    ATTACKER,
    ATTACKER6,
    OUTSIDER,
    OUTSIDER6,
    REPO,
    ROLE_DEFAULTS,
    RULESET,
    VENDOR_A,
    VENDOR_A6,
    Site,
)

pytestmark = pytest.mark.firewall

TEMPLATES = REPO / "roles" / "firewall" / "templates"


def render(template: str, variables: dict[str, object]) -> str:
    """One of the role's templates, rendered the way Ansible does (trim_blocks)."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                     undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     keep_trailing_newline=True, autoescape=False)
    environment.tests["search"] = lambda value, pattern: re.search(pattern, value) is not None
    return environment.get_template(template).render(**variables)


def run_unit(site: Site, reviewed_ruleset: str, setting: str = "ExecStart"
             ) -> subprocess.CompletedProcess[str]:
    """The unit's ExecStart (or ExecReload) in the appliance namespace as it is now, where
    `portcullis firewall apply` fails and portcullis.nft holds ``reviewed_ruleset``."""
    config_dir = site.state / "failsafe"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "portcullis.nft").write_text(reviewed_ruleset)
    variables = {**yaml.safe_load(ROLE_DEFAULTS.read_text()),
                 "firewall_config_dir": str(config_dir),
                 "firewall_portcullis_command": "/bin/false",
                 "firewall_vendor_netblocks": ["207.219.44.0/24", "2001:db8:44::/64"]}
    (config_dir / "portcullis-failsafe.nft").write_text(
        render("portcullis-failsafe.nft.j2", variables))
    unit = render("portcullis-firewall.service.j2", variables)
    command = next(line.removeprefix(f"{setting}=") for line in unit.splitlines()
                   if line.startswith(f"{setting}="))
    return subprocess.run(site.appliance.cmd(*shlex.split(command)), capture_output=True,
                          text=True, timeout=60, check=False)


def boot_loader(site: Site, reviewed_ruleset: str) -> subprocess.CompletedProcess[str]:
    """The unit's ExecStart with nothing loaded (as at boot)."""
    site.appliance.run("nft", "delete", "table", "inet", "portcullis", check=False)
    return run_unit(site, reviewed_ruleset)


def table_handle(site: Site) -> int | None:
    listed = json.loads(site.appliance.run("nft", "-j", "list", "tables").stdout)
    return next((o["table"]["handle"] for o in listed["nftables"]
                 if o.get("table", {}).get("name") == "portcullis"), None)


def test_when_no_ruleset_loads_the_failsafe_one_serves_mail_web_and_vendor_ssh_only(site):
    loaded = boot_loader(site, "this is not a ruleset\n")
    try:
        assert loaded.returncode == 1       # the unit fails: nobody misses it
        assert "<2>FIREWALL ON ITS LAST RESORT" in loaded.stderr
        assert "NO FIREWALL" not in loaded.stderr
        public = site.probe(site.attacker, [
            {"src": ATTACKER, "dst": APPLIANCE, "port": 25},
            {"src": ATTACKER, "dst": APPLIANCE, "port": 80},
            {"src": ATTACKER6, "dst": APPLIANCE6, "port": 25},
            {"src": ATTACKER6, "dst": APPLIANCE6, "port": 80},
            {"src": ATTACKER, "dst": APPLIANCE, "port": 22},
            {"src": ATTACKER6, "dst": APPLIANCE6, "port": 22},
        ])
        vendor = site.probe(site.vendor, [
            {"src": VENDOR_A, "dst": APPLIANCE, "port": 22},
            {"src": VENDOR_A6, "dst": APPLIANCE6, "port": 22},
            {"src": OUTSIDER, "dst": APPLIANCE, "port": 22},
            {"src": OUTSIDER6, "dst": APPLIANCE6, "port": 22},
        ])
        assert [r["connected"] for r in public] == [True, True, True, True, False, False]
        assert [r["connected"] for r in vendor] == [True, True, False, False]
        listed = site.appliance.run("nft", "list", "chain", "inet", "portcullis",
                                    "input").stdout.decode()
        assert "policy drop;" in listed
    finally:
        site.appliance.run("nft", "delete", "table", "inet", "portcullis", check=False)


def test_the_reviewed_ruleset_is_loaded_before_the_failsafe_is_considered(site):
    loaded = boot_loader(site, RULESET.read_text())
    try:
        assert loaded.returncode == 0, loaded.stderr
        assert "LAST RESORT" not in loaded.stderr
        counters = site.appliance.run("nft", "list", "counters").stdout.decode()
        assert "counter public_accepted" in counters   # the full ruleset, not the fail-safe
    finally:
        site.appliance.run("nft", "delete", "table", "inet", "portcullis", check=False)


@pytest.mark.parametrize("setting", ["ExecStart", "ExecReload"])
def test_a_failed_restart_or_reload_keeps_the_running_ruleset_with_the_site_values(
        site, setting):
    site.apply(vendor_netblocks=["198.51.100.0/24"])
    try:
        site.cli("firewall", "block", ATTACKER)
        running = table_handle(site)

        loaded = run_unit(site, RULESET.read_text(), setting)

        # nft applies a file in one transaction: the failed apply changed nothing, and
        # the reviewed file's defaults (another vendor netblock) did not replace it
        assert loaded.returncode == 1
        assert "<3>portcullis firewall apply failed: the running ruleset stays" in loaded.stderr
        assert table_handle(site) == running
        status = site.status()
        assert status["vendor_netblocks"] == ["198.51.100.0/24"]
        assert [e["address"] for e in status["ssh_blocked"]] == [ATTACKER]
        assert site.connects(site.vendor, OUTSIDER, APPLIANCE, 22)
    finally:
        site.appliance.run("nft", "delete", "table", "inet", "portcullis", check=False)


def test_a_failed_reload_with_no_ruleset_running_loads_the_failsafe(site):
    site.appliance.run("nft", "delete", "table", "inet", "portcullis", check=False)
    try:
        loaded = run_unit(site, "this is not a ruleset\n", "ExecReload")

        assert loaded.returncode == 1
        assert "<2>FIREWALL ON ITS LAST RESORT" in loaded.stderr
        assert site.connects(site.attacker, ATTACKER, APPLIANCE, 25)
        assert not site.connects(site.attacker, ATTACKER, APPLIANCE, 22)
        assert site.connects(site.vendor, VENDOR_A, APPLIANCE, 22)
    finally:
        site.appliance.run("nft", "delete", "table", "inet", "portcullis", check=False)


def test_a_reload_on_the_failsafe_loads_the_reviewed_ruleset_when_apply_fails(site):
    assert boot_loader(site, "this is not a ruleset\n").returncode == 1   # the fail-safe
    try:
        loaded = run_unit(site, RULESET.read_text(), "ExecReload")

        assert loaded.returncode == 0, loaded.stderr
        counters = site.appliance.run("nft", "list", "counters").stdout.decode()
        assert "counter public_accepted" in counters
    finally:
        site.appliance.run("nft", "delete", "table", "inet", "portcullis", check=False)
