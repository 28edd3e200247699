"""After the roles: freeze which units are enabled, and measure the units' sandboxing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from builder.progress import Progress

PRESET = "usr/lib/systemd/system-preset/00-portcullis-image.preset"
EXPOSURE_GOAL = 2.5


def freeze_presets(rootfs: Path) -> list[str]:
    """Record the units the roles left enabled as the image's preset policy.

    mkosi runs ``systemctl preset-all`` again when it makes the disk; without this a unit a
    role disabled (but did not mask) would come back, and first-boot or factory-reset presets
    would differ from what the roles decided.
    """
    listing = subprocess.run(
        ["systemctl", f"--root={rootfs}", "list-unit-files", "--no-legend", "--no-pager",
         "--state=enabled,disabled"], capture_output=True, text=True, check=True).stdout
    enabled = sorted(fields[0] for fields in (line.split() for line in listing.splitlines())
                     if len(fields) >= 2 and fields[1] == "enabled")
    lines = ["# Written by make image (image/builder/units.py): the units the Ansible roles",
             "# left enabled.  Everything else stays disabled.",
             *(f"enable {unit}" for unit in enabled), "disable *", ""]
    target = rootfs / PRESET
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines))
    return enabled


def portcullis_units(rootfs: Path) -> list[str]:
    names: set[str] = set()
    for directory in ("etc/systemd/system", "usr/lib/systemd/system"):
        names.update(p.name for p in (rootfs / directory).glob("portcullis-*.service"))
    return sorted(names)


def security_exposure(rootfs: Path, unit: str) -> float | None:
    """``systemd-analyze security`` exposure of a unit, read offline from the image tree."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={rootfs}", "--no-pager",
         unit], capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    return float(match.group(1)) if match else None


def security_report(progress: Progress, rootfs: Path, report: Path) -> dict[str, float | None]:
    exposures = {unit: security_exposure(rootfs, unit) for unit in portcullis_units(rootfs)}
    lines = []
    for unit, exposure in exposures.items():
        verdict = ("not analysable" if exposure is None else
                   "ok" if exposure <= EXPOSURE_GOAL else f"ABOVE the {EXPOSURE_GOAL} goal")
        shown = "?" if exposure is None else f"{exposure:.1f}"
        lines.append(f"{unit:45} {shown:>4}  {verdict}")
        progress.info(f"exposure {unit}: {shown} ({verdict})")
    report.write_text("systemd-analyze security (offline, image tree): exposure per unit\n"
                      + "\n".join(lines) + "\n")
    return exposures
