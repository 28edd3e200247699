"""Pushing signed application updates from the vendor to an appliance over SSH."""

from __future__ import annotations

import json
import shlex

import pytest

from portcullis.update.releases import Releases, pip_version
from tests.integration.updates.lab import (
    APPLIANCE_IP,
    IMPOSTOR_IP,
    OLD_PIP_RAN,
    Lab,
    has_pip,
    old_pip_wheel,
    vendor,
)

pytestmark = pytest.mark.updates


def test_signed_newer_bundle_is_pushed_applied_and_the_new_version_runs(appliance: Lab,
                                                                        builds):
    old_pid = appliance.gateway_pid()
    assert appliance.running_version() == "0.1.0"
    bundle = builds.path("app-0.2.0-from-source.bundle")
    vendor("build", "--target", "app", "--source", str(builds.source("0.2.0")),
           "--out", str(bundle))
    vendor("sign", "--key", str(builds.keys.signing("k1")), str(bundle))

    pushed = vendor("push", "--inventory", str(appliance.inventory), "--identity",
                    str(builds.keys.ssh), str(bundle), ns=appliance.vendor, check=False)

    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    header, row = pushed.stdout.splitlines()[:2]
    assert header.split() == ["APPLIANCE", "ADDRESS", "RESULT", "VERSION", "PREVIOUS",
                              "REASON"]
    assert row.split()[:5] == ["appliance-1", APPLIANCE_IP, "applied", "0.2.0", "0.1.0"]
    assert "[appliance-1] sent 100%" in pushed.stderr
    assert appliance.current_version() == "0.2.0"
    assert appliance.gateway_pid() != old_pid
    assert appliance.running_version() == "0.2.0"
    assert appliance.wait_for_gateway().startswith("220 appliance.test")
    (attempt,) = appliance.history()
    assert (attempt.outcome, attempt.target, attempt.version, attempt.previous,
            attempt.client) == ("applied", "app", "0.2.0", "0.1.0", "207.219.44.10")
    shown = appliance.appliance.run(str(appliance.current / "bin" / "portcullis-update-agent"),
                                    "--config", str(appliance.agent_toml), "history")
    header, line = shown.stdout.decode().splitlines()
    assert header.split()[:5] == ["STARTED", "CLIENT", "TARGET", "VERSION", "OUTCOME"]
    assert line.split()[2:7] == ["207.219.44.10", "app", "0.2.0", "applied", "healthy"]


def test_push_to_many_reports_each_appliance_in_a_table(appliance: Lab, builds):
    inventory = appliance.inventory_file("many.toml", [
        ("appliance-1", APPLIANCE_IP),
        ("switched-off", f"{APPLIANCE_IP}:2222"),       # nothing listens there
        ("impostor", IMPOSTOR_IP),                       # host key differs from known_hosts
    ])

    pushed = vendor("push", "--inventory", str(inventory), "--identity",
                    str(builds.keys.ssh), "--parallel", "2", str(builds.app("0.2.0", "k1")),
                    ns=appliance.vendor, check=False)

    assert pushed.returncode == 1      # not every appliance applied it
    rows = {line.split()[0]: line for line in pushed.stdout.splitlines()[1:4]}
    assert rows["appliance-1"].split()[2] == "applied"
    assert rows["switched-off"].split()[2] == "unreachable"
    assert "Connection refused" in rows["switched-off"]
    assert rows["impostor"].split()[2] == "unreachable"
    assert "host key does not match known_hosts" in rows["impostor"]
    assert pushed.stdout.splitlines()[4] == "1 applied, 2 unreachable"
    assert appliance.running_version() == "0.2.0"


def test_vendor_status_shows_what_each_appliance_runs(appliance: Lab, builds):
    appliance.push_one(builds.app("0.2.0", "k1"))

    status = vendor("status", "--inventory", str(appliance.inventory), "--identity",
                    str(builds.keys.ssh), ns=appliance.vendor)

    header, row = status.stdout.splitlines()
    assert header.split() == ["APPLIANCE", "ADDRESS", "APP", "CLAMAV", "CONFIG", "TRUST",
                              "ROOT", "LAST", "UPDATE"]
    assert row.split() == ["appliance-1", APPLIANCE_IP, "0.2.0", "-", "-", "1", "applied",
                           "0.2.0"]


def test_app_update_builds_the_release_with_the_appliances_pip_wheel(appliance: Lab, builds):
    # The releases have no pip, as the mailfilter role makes them: pip runs from the
    # appliance's wheel (agent.toml pip_wheel).
    assert not has_pip(appliance.releases_dir / "0.1.0")

    result = appliance.push_one(builds.app("0.2.0", "k1"))

    assert (result["result"], result["version"]) == ("applied", "0.2.0"), result
    assert appliance.running_version() == "0.2.0"
    assert not has_pip(appliance.releases_dir / "0.2.0")


def test_app_update_carrying_a_pip_wheel_is_built_with_that_pip(appliance: Lab, builds):
    appliance.pip_wheel.unlink()      # so only the bundle's pip can have built the release

    without = appliance.push_one(builds.app("0.2.0", "k1"))
    assert without["result"] == "failed", without
    assert f"no pip to install with: {appliance.pip_wheel} is missing" in without["reason"]
    assert appliance.current_version() == "0.1.0"

    result = appliance.push_one(builds.app_with_pip("0.2.0", "k1"))

    assert (result["result"], result["version"]) == ("applied", "0.2.0"), result
    assert appliance.running_version() == "0.2.0"
    assert not has_pip(appliance.releases_dir / "0.2.0")


def test_app_update_carrying_an_older_pip_is_built_with_the_appliances_own(appliance: Lab,
                                                                          builds):
    # A signed bundle's pip may be old (an old build pushed again, or on purpose): it must
    # not take the appliance's installer back to an older pip.
    old_pip = old_pip_wheel(builds.work / "wheels" / "old-pip")
    own = pip_version(appliance.pip_wheel)

    result = appliance.push_one(builds.app_with_pip("0.2.0", "k1", pip=old_pip))

    assert (result["result"], result["version"]) == ("applied", "0.2.0"), result
    assert OLD_PIP_RAN not in result["reason"]
    assert f"built with the appliance's pip {own}: the bundle's pip 9.0.1 is not newer" \
        in result["reason"]
    assert appliance.running_version() == "0.2.0"
    (attempt,) = appliance.history()
    assert "the bundle's pip 9.0.1 is not newer" in attempt.reason


def agent_running(appliance: Lab, command: str) -> None:
    """The appliance's agent replaced by a shell ``command`` run whatever it is asked (once
    the request is read): a broken appliance, or one somebody else controls."""
    bin_dir = appliance.releases_dir / "6.6.6" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "portcullis-update-agent"
    script.write_text(f"#!/bin/sh\ncat > /dev/null\n{command}\n")
    script.chmod(0o755)
    Releases(appliance.releases_dir, appliance.current).switch("6.6.6")


def agent_answering(appliance: Lab, answer: object) -> None:
    """The appliance's agent answering ``answer`` (as JSON) whatever it is asked."""
    agent_running(appliance, f"printf '%s\\n' {shlex.quote(json.dumps(answer))}")


def vendor_status(appliance: Lab, builds) -> object:
    return vendor("status", "--inventory", str(appliance.inventory), "--identity",
                  str(builds.keys.ssh), ns=appliance.vendor, check=False)


def test_vendor_status_names_an_answer_that_is_no_status_and_does_not_crash(appliance: Lab,
                                                                            builds):
    agent_answering(appliance, ["not", "a", "status"])

    status = vendor_status(appliance, builds)

    assert "Traceback" not in status.stderr
    assert status.returncode == 1
    row = status.stdout.splitlines()[1]
    assert row.split()[:2] == ["appliance-1", APPLIANCE_IP]
    assert row.endswith('unexpected answer: ["not", "a", "status"]')


def test_vendor_shows_no_control_character_an_appliance_sends(appliance: Lab, builds):
    # An escape sequence can retitle, clear or script the vendor's terminal.
    hostile = "\x1b]2;owned\x07\x1b[2J\u202e1.0"
    agent_answering(appliance, {"versions": {"app": hostile}, "recent": [
        {"outcome": "applied", "version": hostile}]})
    status = vendor_status(appliance, builds)
    agent_answering(appliance, {"outcome": "rejected", "reason": hostile})
    pushed = vendor("push", "--inventory", str(appliance.inventory), "--identity",
                    str(builds.keys.ssh), str(builds.app("0.2.0", "k1")),
                    ns=appliance.vendor, check=False)

    for shown in (status.stdout, pushed.stdout):
        assert "?]2;owned??[2J?1.0" in shown
        assert not any(c in shown for c in "\x1b\x07\u202e")


def test_an_appliance_answering_without_end_does_not_hold_the_push_for_ever(appliance: Lab,
                                                                           builds):
    agent_running(appliance, "exec yes '{\"outcome\": \"applied\"}'")

    pushed = vendor("push", "--inventory", str(appliance.inventory), "--identity",
                    str(builds.keys.ssh), str(builds.app("0.2.0", "k1")),
                    ns=appliance.vendor, check=False, timeout=120)
    status = vendor_status(appliance, builds)

    assert pushed.returncode == 1
    assert pushed.stdout.splitlines()[1].split()[2] == "pushed"    # not "applied"
    assert pushed.stdout.splitlines()[1].endswith("unexpected answer: more than 1048576 "
                                                  "bytes")
    assert status.stdout.splitlines()[1].endswith("unexpected answer: more than 1048576 "
                                                  "bytes")
