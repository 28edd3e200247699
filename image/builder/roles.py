"""Applying image/playbook.yml to the image root from the host (community.general.chroot)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from builder import paths
from builder.progress import Progress

PLAYBOOK = paths.IMAGE_DIR / "playbook.yml"
# Ansible's scratch directory inside the image root (a path in the image, not on the host).
REMOTE_TEMP = "/var/tmp/.ansible-build"  # noqa: S108
# Device nodes a package script or module may open; nothing else of the host's /dev.
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
           "urandom": (1, 9), "tty": (5, 0)}


def role_packages(roles_dir: Path = paths.REPO / "roles") -> list[str]:
    """Debian packages the roles declare (``<role>_packages`` in defaults/ or vars/main.yml).

    The image pre-installs them with mkosi (cached, fast) so that the roles' own apt tasks
    find them present; a role's apt task still installs anything missing.
    """
    found: set[str] = set()
    for role in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        for part in ("defaults", "vars"):
            path = role / part / "main.yml"
            if path.is_file():
                found.update(_packages_in(path.read_text(encoding="utf-8"), role.name))
    return sorted(found)


def _packages_in(text: str, role: str) -> list[str]:
    """The list under ``<role>_packages:`` (inline ``[a, b]`` or a block of ``- a`` lines)."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = re.match(rf"^{re.escape(role)}_packages:\s*(.*)$", line)
        if not match:
            continue
        rest = match.group(1).split("#", 1)[0].strip()
        if rest.startswith("["):
            return [item.strip().strip("'\"") for item in rest.strip("[]").split(",")
                    if item.strip()]
        items = []
        for following in lines[index + 1:]:
            item = re.match(r"^\s+-\s+([A-Za-z0-9.+:_-]+)", following)
            if not item:
                break
            items.append(item.group(1))
        return items
    return []


@contextlib.contextmanager
def prepared_root(rootfs: Path) -> Iterator[None]:
    """A minimal /dev, an empty /run and the host's resolver in the image root while Ansible
    runs.  /proc and /sys stay empty on purpose: nothing in a role may reach the build host's
    kernel (the roles' handlers check ``ansible_facts.is_chroot``).
    """
    dev, run = rootfs / "dev", rootfs / "run"
    for mountpoint, options in ((dev, "size=1M,nosuid,noexec"), (run, "size=16M,nosuid,nodev")):
        mountpoint.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"mode=0755,{options}",
                        "portcullis-build", mountpoint], check=True)
    resolv = rootfs / "etc/resolv.conf"
    placed_resolv = False
    try:
        for name, (major, minor) in DEVICES.items():
            os.mknod(dev / name, 0o666 | 0o020000, os.makedev(major, minor))
            os.chmod(dev / name, 0o666)  # noqa: S103 (the usual modes of these device nodes)
        if not resolv.exists() and not resolv.is_symlink():
            # The resolver role points the image at its own unbound as its very last step.
            resolv.write_text(Path("/etc/resolv.conf").read_text())
            placed_resolv = True
        yield
    finally:
        for mountpoint in (run, dev):
            subprocess.run(["umount", mountpoint], check=True)
        if placed_resolv and "127.0.0.1" not in resolv.read_text():
            resolv.unlink()


def apply(progress: Progress, rootfs: Path, extra_vars: dict[str, object]) -> None:
    # Our own settings only: no ansible.cfg of the invoking user or directory applies.
    config = paths.GENERATED / "ansible.cfg"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[defaults]\nforks = 1\ngathering = explicit\n")
    env = {**os.environ,
           "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_LOCAL_TEMP": str(paths.CACHE / "ansible-tmp"),
           "ANSIBLE_REMOTE_TEMP": REMOTE_TEMP,
           "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
           "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "0",
           "ANSIBLE_CONFIG": str(config)}
    variables = {"portcullis_image_build": True, **extra_vars}
    with prepared_root(rootfs):
        progress.run([paths.VENV / "bin/ansible-playbook", "-i", f"{rootfs},",
                      "-c", "community.general.chroot", "-e", json.dumps(variables), PLAYBOOK],
                     env=env, cwd=paths.IMAGE_DIR,
                     show=lambda line: line.startswith(("TASK [", "PLAY RECAP", "fatal:"))
                     or " ok=" in line)
    leftover = rootfs / REMOTE_TEMP.lstrip("/")
    if leftover.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", leftover], check=True)
