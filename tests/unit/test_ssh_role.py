"""The ssh role's checks of ssh_vendor_netblocks, each entry of which becomes an sshd
``AllowUsers user@entry`` pattern: its tasks' expressions evaluated as Ansible evaluates
them, and its check command run for real (the release's ``portcullis``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from tests.support.sshd import effective_settings

pytestmark = pytest.mark.updates

ROLE = Path(__file__).resolve().parents[2] / "roles" / "ssh"
PORTCULLIS = str(Path(sys.executable).parent / "portcullis")


def tasks() -> list[dict[str, Any]]:
    return yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())


def task(name: str) -> dict[str, Any]:
    return next(t for t in tasks() if t["name"] == name)


def environment() -> jinja2.Environment:
    # Ansible's undefined chains (``registered.stat.exists | default(false)``)
    env = jinja2.Environment(undefined=jinja2.ChainableUndefined)
    env.tests["match"] = lambda value, pattern: re.match(pattern, value) is not None
    return env


def evaluate(expression: str, variables: dict[str, Any]) -> Any:
    """A bare expression (``that:``, ``when:``) or a templated string, as Ansible reads it."""
    env = environment()
    text = expression.strip()
    if text.startswith("{{") and text.endswith("}}"):
        text = text[2:-2]
    return env.compile_expression(text)(**variables)


def shape_accepts(netblocks: list[str]) -> bool:
    check = task("Check the shape of the vendor netblocks")
    variables = {"ssh_vendor_netblocks": netblocks, **check["vars"]}
    return bool(evaluate(check["ansible.builtin.assert"]["that"], variables))


def run_check(netblocks: list[str], *, chroot: bool = False) -> subprocess.CompletedProcess | None:
    """The rule check as the role runs it on a host with a release (None: skipped)."""
    check = task("Check the vendor netblocks by the appliance's own rule")
    variables = {"ssh_vendor_netblocks": netblocks, "ssh_portcullis_command": PORTCULLIS,
                 "ssh_portcullis": {} if chroot else {"stat": {"exists": True}}}
    if not all(evaluate(condition, variables) for condition in check["when"]):
        return None
    argv = evaluate(check["ansible.builtin.command"]["argv"], variables)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_vendor_netblocks_are_checked_before_sshd_is_configured():
    names = [t["name"] for t in tasks()]
    assert names.index("Check the shape of the vendor netblocks") \
        < names.index("Check the vendor netblocks by the appliance's own rule") \
        < names.index("Configure sshd")


@pytest.mark.parametrize("netblocks,why", [
    (["207.219.44.0/24", "0.0.0.0/0"], "'0.0.0.0/0' is too broad"),
    (["::/0"], "'::/0' is too broad"),
    (["207.219.44.1/24"], "has host bits set"),
    (["127.0.0.0/8"], "is not a network the vendor can connect from"),
])
def test_a_netblock_the_vendor_rule_refuses_stops_the_role(netblocks, why):
    assert shape_accepts(netblocks)   # looks like a network; only the rule knows better
    refused = run_check(netblocks)
    assert refused is not None and refused.returncode == 1
    assert why in refused.stderr


@pytest.mark.parametrize("entry", ["207.219.44.0/24 *", "*", "example.com",
                                   "207.219.44.0/24\n", "!207.219.44.0/24", "-h"])
def test_a_pattern_that_is_no_network_stops_the_role_even_without_a_release(entry):
    assert not shape_accepts(["207.219.44.0/24", entry])
    refused = run_check([entry])
    assert refused is not None and refused.returncode == 1
    assert "is not an IP network" in refused.stderr


def test_the_default_netblocks_pass():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert shape_accepts(defaults["ssh_vendor_netblocks"])
    passed = run_check(defaults["ssh_vendor_netblocks"])
    assert passed is not None and passed.returncode == 0, passed.stderr


def test_no_netblock_or_no_release_skips_the_rule_check():
    assert shape_accepts([])
    assert run_check([]) is None
    assert run_check(["0.0.0.0/0"], chroot=True) is None


def render_sshd_config(**overrides: Any) -> str:
    """The role's sshd drop-in as Ansible renders it, with these variables changed."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["regex_replace"] = lambda value, pattern, by: re.sub(pattern, by, value)
    variables = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
                 "ansible_managed": "managed", **overrides}
    return env.get_template("sshd.conf.j2").render(**variables)


def sshd_settings(tmp_path: Path, drop_in: str, user: str, address: str) -> dict[str, str]:
    """What sshd itself makes of the drop-in for ``user`` connecting from ``address``."""
    (tmp_path / "10-portcullis.conf").write_text(drop_in)
    return effective_settings(tmp_path, f"Include {tmp_path / '10-portcullis.conf'}\n",
                              user, address)


@pytest.mark.parametrize(("accounts", "netblocks", "admitted"), [
    ([], ["207.219.44.0/24"], ["pcupdate@207.219.44.0/24"]),
    (["root"], ["207.219.44.0/24"], ["pcupdate@207.219.44.0/24", "root@207.219.44.0/24"]),
    # No netblock: the update_agent role's own drop-in confines the account to its own.
    ([], [], ["pcupdate"]),
])
def test_the_update_account_is_never_shut_out(tmp_path, accounts, netblocks, admitted):
    """sshd checks DenyUsers before AllowUsers: the "DenyUsers *" written for an empty
    account or netblock list also refused the update account, and every vendor push."""
    drop_in = render_sshd_config(ssh_allowed_users=accounts, ssh_vendor_netblocks=netblocks)
    settings = sshd_settings(tmp_path, drop_in, "pcupdate", "207.219.44.10")
    assert "denyusers" not in settings
    assert settings["allowusers"].split() == admitted


def test_an_empty_account_list_admits_no_other_account(tmp_path):
    settings = sshd_settings(tmp_path, render_sshd_config(ssh_allowed_users=[]), "root",
                             "207.219.44.10")
    assert {entry.split("@")[0] for entry in settings["allowusers"].split()} == {"pcupdate"}


def accounts_check(**overrides: Any) -> tuple[bool, str]:
    """Whether the role's account check passes with these variables, and its message."""
    check = task("Check the accounts allowed to log in")
    variables = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()), **overrides}
    variables["ssh_account_shape"] = check["vars"]["ssh_account_shape"]
    variables["ssh_accounts"] = evaluate(check["vars"]["ssh_accounts"], variables)
    assertion = check["ansible.builtin.assert"]
    message = environment().from_string(assertion["fail_msg"]).render(**variables)
    return bool(evaluate(assertion["that"], variables)), message


def test_accounts_are_checked_before_sshd_is_configured():
    names = [t["name"] for t in tasks()]
    assert names.index("Check the accounts allowed to log in") < names.index("Configure sshd")


@pytest.mark.parametrize("account", ["*", "ro?t", "root admin", "root\nPermitRootLogin yes",
                                     "root\n", "!root", "root,admin", "admin@0.0.0.0/0",
                                     "-oProxyCommand", "Root", "", "a" * 33])
def test_an_account_that_is_no_plain_name_stops_the_role(account):
    accepted, message = accounts_check(ssh_allowed_users=["root", account])
    assert not accepted
    assert "ssh_allowed_users and ssh_update_user must be account names" in message
    assert repr(account) in message
    assert not accounts_check(ssh_update_user=account)[0]


def test_sshd_itself_takes_a_pattern_for_an_account(tmp_path):
    """Why the role checks: sshd -t finds nothing wrong with an account '*', which admits
    every account of the machine from the vendor netblocks."""
    settings = sshd_settings(tmp_path, render_sshd_config(ssh_allowed_users=["*"]), "games",
                             "207.219.44.10")
    assert "*@207.219.44.0/24" in settings["allowusers"].split()


@pytest.mark.parametrize("accounts", [[], ["root"], ["root", "support_1", "vendor-ops"]])
def test_plain_account_names_pass(accounts):
    assert accounts_check(ssh_allowed_users=accounts)[0]


def other_values_check(**overrides: Any) -> bool:
    """Whether the role's check of the algorithm lists and MaxStartups passes."""
    check = task("Check the other values written into sshd_config")
    variables = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()), **overrides}
    variables.update({key: value for key, value in check["vars"].items()
                      if key.endswith("_shape")})
    variables["ssh_algorithms"] = evaluate(check["vars"]["ssh_algorithms"], variables)
    return all(evaluate(condition, variables)
               for condition in check["ansible.builtin.assert"]["that"])


def test_the_other_values_are_checked_before_sshd_is_configured():
    names = [t["name"] for t in tasks()]
    assert names.index("Check the other values written into sshd_config") \
        < names.index("Configure sshd")


def test_a_newline_in_a_value_sshd_config_takes_as_it_is_stops_the_role(tmp_path):
    injected = "aes128-gcm@openssh.com\nPermitRootLogin yes"
    # sshd itself finds nothing wrong: the value becomes a setting of its own.
    drop_in = render_sshd_config(ssh_ciphers=[injected], ssh_permit_root_login="no")
    assert sshd_settings(tmp_path, drop_in, "root", "207.219.44.10")["permitrootlogin"] \
        == "yes"
    assert not other_values_check(ssh_ciphers=[injected])
    assert not other_values_check(ssh_kex_algorithms=["curve25519-sha256 sntrup761"])
    assert not other_values_check(ssh_max_startups="10:30:60\nPermitRootLogin yes")
    assert other_values_check()


def test_roles_that_name_the_same_thing_default_to_the_same_value():
    """Each role documents its own defaults (dev-sec style), so a value two roles need is
    written in each: the update account sshd admits must be the one the update_agent role
    creates, and the vendor netblocks the same wherever SSH is opened to them, or the
    vendor's pushes are shut out by one role while another lets them in."""
    roles = ROLE.parent

    def defaults(role: str) -> dict[str, Any]:
        return yaml.safe_load((roles / role / "defaults" / "main.yml").read_text())

    ssh, agent, firewall = defaults("ssh"), defaults("update_agent"), defaults("firewall")
    assert ssh["ssh_update_user"] == agent["update_agent_user"]
    assert ssh["ssh_vendor_netblocks"] == agent["update_agent_vendor_netblocks"] \
        == firewall["firewall_vendor_netblocks"]


@pytest.mark.parametrize(("netblocks", "accepted"), [
    (["207.219.44.0/24"], True), (["207.219.44.0/24\n"], False), (["207.219.44.0/24 x"], False)])
def test_the_firewall_role_checks_the_netblocks_shape_to_the_end_as_the_ssh_role_does(
        netblocks, accepted):
    """``$`` matches before a final newline: the firewall role's shape check let
    ``207.219.44.0/24\\n`` through where the ssh role's (``\\Z``) refused it."""
    steps = yaml.safe_load((ROLE.parent / "firewall" / "tasks" / "main.yml").read_text())
    check = next(t for t in steps if t["name"] == "Check the firewall's site values")
    shape = next(c for c in check["ansible.builtin.assert"]["that"]
                 if "firewall_vendor_netblocks | reject" in c)
    assert bool(evaluate(shape, {"firewall_vendor_netblocks": netblocks})) is accepted
