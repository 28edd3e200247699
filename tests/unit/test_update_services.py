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
