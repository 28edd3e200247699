"""The appliance's own units: every one that keeps running is restarted after an update
(else it runs the old code, and reads the old configuration, until the next boot), and
shown on the web UI's server page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from portcullis.update.agentconfig import AgentConfig

pytestmark = pytest.mark.updates

ROLES = Path(__file__).resolve().parents[2] / "roles"


def kept_running_units() -> set[str]:
    """The appliance's own units that stay active: services, and one-shot units that
    remain after they ran (the firewall's ruleset).  Template units (@) are started per
    connection and end with it."""
    units = set()
    for template in ROLES.glob("*/templates/portcullis-*.service.j2"):
        name = template.name.removesuffix(".j2")
        text = template.read_text()
        kind = re.search(r"^Type=(\w+)", text, re.MULTILINE)
        oneshot = kind is not None and kind.group(1) == "oneshot"
        if "@" in name or (oneshot and "RemainAfterExit=yes" not in text):
            continue
        units.add(name)
    return units


def test_an_update_restarts_every_unit_that_runs_the_release():
    defaults = yaml.safe_load((ROLES / "update_agent/defaults/main.yml").read_text())
    restarted = defaults["update_agent_services"]
    assert set(restarted) == kept_running_units()
    assert tuple(restarted) == AgentConfig.__dataclass_fields__["services"].default
    # The firewall first: a [firewall] value that does not load fails the update before
    # the gateway runs the new release.
    assert restarted[0] == "portcullis-firewall.service"


def test_the_server_page_shows_every_unit_the_appliance_keeps_running():
    from portcullis.web.unitstatus import UNITS

    assert kept_running_units() <= set(UNITS)


def seconds(span: str) -> int:
    """A systemd time span of whole hours, minutes or seconds ("2h", "90min", "30")."""
    number, unit = re.fullmatch(r"(\d+)(h|min|s|)", span).groups()
    return int(number) * {"h": 3600, "min": 60}.get(unit, 1)


def test_the_agent_and_the_vendor_wait_for_the_longest_installation():
    # The agent waited 1800 s for root's installer, the vendor 1800 s for the agent, while
    # an installation may run for the unit's RuntimeMaxSec: an app update with a long
    # health check was reported failed (and recorded so) and then applied all the same.
    from portcullis.update import transfer
    from portcullis.update.bundle import MAX_HEALTH_TIMEOUT
    from portcullis.update.releases import PIP_TIMEOUT
    from portcullis.update.restart import RESTART_TIMEOUT
    from portcullis_vendor.push import SshSettings

    unit = (ROLES / "update_agent/templates/portcullis-update-install@.service.j2").read_text()
    allowed = seconds(re.search(r"^RuntimeMaxSec=(\S+)$", unit, re.MULTILINE).group(1))
    # Build, restart, the bundle's own health check; on failure the switch back, a
    # restart and the appliance's own check.
    longest = (PIP_TIMEOUT + RESTART_TIMEOUT + MAX_HEALTH_TIMEOUT + RESTART_TIMEOUT
               + AgentConfig().health_timeout)

    assert longest <= allowed == transfer.INSTALL_MAX_SECONDS
    assert allowed < transfer.ANSWER_WAIT                           # the agent
    assert SshSettings.__dataclass_fields__["transfer_timeout"].default > \
        transfer.ANSWER_WAIT                                        # the vendor
