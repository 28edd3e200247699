"""The webui Ansible role: documented, validated variables and a sandboxed unit."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

pytestmark = pytest.mark.webui

ROLE = Path(__file__).resolve().parents[2] / "roles" / "webui"


def defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def test_every_default_is_prefixed_commented_and_validated():
    text = (ROLE / "defaults" / "main.yml").read_text().splitlines()
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    for name, value in defaults().items():
        assert name.startswith("webui_"), name
        line = next(i for i, t in enumerate(text) if t.startswith(f"{name}:"))
        comment = text[line - 1]
        assert comment.startswith("# ") and re.search(r"# \S.*$", comment), name
        assert name in options and options[name]["default"] == value, name
    assert set(options) == set(defaults())


def render_unit(tmp_path: Path, **overrides: object) -> Path:
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        (ROLE / "templates" / "portcullis-web.service.j2").read_text())
    unit = tmp_path / "portcullis-web.service"
    unit.write_text(template.render(**(defaults() | overrides)))
    return unit


def directives(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_unit_runs_unprivileged_with_only_the_port_80_capability(tmp_path):
    unit = directives(render_unit(tmp_path, webui_extra_groups=["clamav"]))
    assert unit["User"] == ["portcullis-web"]
    assert unit["SupplementaryGroups"] == ["portcullis clamav"]
    assert unit["AmbientCapabilities"] == unit["CapabilityBoundingSet"] == [
        "CAP_NET_BIND_SERVICE"]
    assert unit["UMask"] == ["0007"]
    assert unit["ReadWritePaths"] == ["/var/lib/portcullis -/run/portcullis-clamav"]
    assert unit["ExecStart"] == [
        "/opt/portcullis/current/bin/portcullis web --config /etc/portcullis/portcullis.toml"]
    assert unit["NoNewPrivileges"] == ["yes"] and unit["ProtectSystem"] == ["strict"]


def test_systemd_rates_the_unit_exposure_low(tmp_path):
    unit = render_unit(tmp_path)
    # Exposure is 0-10 as shown (0-100 for --threshold); 2.0 and below is "OK".
    result = subprocess.run(["systemd-analyze", "security", "--offline=true",
                             "--threshold=20", "--no-pager", str(unit)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert level and float(level.group(1)) <= 2.0, result.stdout
