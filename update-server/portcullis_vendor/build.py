"""Building bundles: the payload for each target, described by a manifest, unsigned.

Signing is a separate step (``portcullis-vendor sign``) so the build can run on an
ordinary build machine and the signing key can stay on a machine that does nothing else.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from portcullis.update import keys
from portcullis.update.bundle import HealthCheck, Manifest, make_manifest, write_bundle
from portcullis.update.versions import VersionError, parse_version
from portcullis_vendor import pins

_WHEEL_NAME = re.compile(r"(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)-.+\.whl")
WHEEL_TIMEOUT = 900
LOCK_NAME = "requirements.lock"
# What an app bundle carries besides its dependencies: the release and the pip to build it
# with (the appliance takes that only if newer than its own).
NOT_DEPENDENCIES = ("portcullis", "pip")


class BuildError(Exception):
    """The bundle cannot be built; the message says why."""


def wheel_version(path: Path) -> tuple[str, str]:
    """(project name, version) from a wheel's file name."""
    match = _WHEEL_NAME.fullmatch(path.name)
    if not match:
        raise BuildError(f"{path.name} is not a wheel file name")
    return match["name"], match["version"]


def build_wheel(source: Path, out_dir: Path) -> Path:
    """``pip wheel --no-deps`` of the source tree (the repository root with pyproject)."""
    if not (source / "pyproject.toml").is_file():
        raise BuildError(f"{source} has no pyproject.toml")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir",
         str(out_dir), str(source)], capture_output=True, text=True, timeout=WHEEL_TIMEOUT,
        check=False)
    wheels = sorted(out_dir.glob("portcullis-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise BuildError(f"building the wheel of {source} failed: {tail}")
    return wheels[0]


def check_dependencies(wheels: list[Path], lock: Path | None) -> None:
    """Every dependency wheel is a file ``lock`` (requirements.lock) pins: its project, at
    the pinned version, with a pinned sha256, so an app release cannot bring dependencies
    other than the reviewed ones; BuildError naming the wheel otherwise."""
    dependencies = [w for w in wheels
                    if pins.normalize(wheel_version(w)[0]) not in NOT_DEPENDENCIES]
    if not dependencies:
        return
    if lock is None:
        raise BuildError(f"dependency wheels ({', '.join(w.name for w in dependencies)}) are "
                         f"checked against the {LOCK_NAME} they were reviewed with: give it "
                         "with --lock FILE (or --source)")
    try:
        locked = pins.read(lock)
    except (OSError, pins.PinsError) as exc:
        raise BuildError(f"cannot read the lock {lock}: {exc}") from None
    for wheel in dependencies:
        try:
            pins.check_file(wheel, locked, str(lock))
        except pins.PinsError as exc:
            raise BuildError(str(exc)) from None


def bundle_from_files(out: Path, target: str, version: str, files: Mapping[str, Path], *,
                      expires: datetime, created: datetime | None = None,
                      health_check: HealthCheck | None = None,
                      description: str = "", audience: str | None = None) -> Manifest:
    """Write an unsigned bundle of ``files`` (payload name -> local file) for the appliance
    whose SSH host key fingerprint is ``audience`` (None: every appliance; a config bundle
    must name one)."""
    try:
        parse_version(version)
    except VersionError as exc:
        raise BuildError(str(exc)) from None
    for name, path in files.items():
        if not path.is_file():
            raise BuildError(f"{path}: not a file")
        if "/" in name:
            raise BuildError(f"{name}: payload files of this kind are flat names")
    try:
        manifest = make_manifest(target, version, files,
                                 created=created or datetime.now(UTC), expires=expires,
                                 health_check=health_check, description=description,
                                 audience=audience)
    except ValueError as exc:
        raise BuildError(str(exc)) from None
    write_bundle(out, manifest, files)
    return manifest


def app_bundle(out: Path, *, expires: datetime, source: Path | None = None,
               wheels: tuple[Path, ...] = (), version: str | None = None,
               health_check: HealthCheck | None = None, created: datetime | None = None,
               description: str = "", audience: str | None = None,
               lock: Path | None = None) -> Manifest:
    """An application bundle: the portcullis wheel (built from ``source`` or given) plus
    any dependency wheels it newly needs (the appliance installs without network), each
    the file ``lock`` pins (default: the ``source`` tree's requirements.lock)."""
    if lock is None and source is not None:
        lock = source / LOCK_NAME
    check_dependencies(list(wheels), lock)
    with tempfile.TemporaryDirectory(prefix="portcullis-vendor-") as scratch:
        all_wheels = list(wheels)
        if source is not None:
            all_wheels.insert(0, build_wheel(source, Path(scratch)))
        apps = [w for w in all_wheels if wheel_version(w)[0].lower() == "portcullis"]
        if len(apps) != 1:
            raise BuildError("an app bundle needs exactly one portcullis wheel "
                             "(--source or --wheel)")
        found = wheel_version(apps[0])[1]
        if version is not None and version != found:
            raise BuildError(f"the wheel is version {found}, not {version}")
        return bundle_from_files(out, "app", found, {w.name: w for w in all_wheels},
                                 expires=expires, created=created, health_check=health_check,
                                 description=description, audience=audience)


def trust_root_bundle(out: Path, trust_root: Path, *, expires: datetime,
                      created: datetime | None = None, description: str = "",
                      audience: str | None = None) -> Manifest:
    """A key rotation: the new trust root file; its version is the bundle's version."""
    try:
        root = keys.load_trust_root(trust_root)
    except keys.TrustRootError as exc:
        raise BuildError(str(exc)) from None
    return bundle_from_files(out, "trust-root", str(root.version), {"trust.json": trust_root},
                             expires=expires, created=created, description=description,
                             audience=audience)


def expiry(days: float | None, at: str | None) -> datetime:
    """When a new bundle stops being accepted: ``at`` (ISO) or ``days`` from now."""
    now = datetime.now(UTC)
    if at:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise BuildError(f"--expires {at!r} is not a timestamp like 2025-01-31T12:00Z") \
                from None
        moment = moment.replace(tzinfo=moment.tzinfo or UTC)
    else:
        moment = now + timedelta(days=30 if days is None else days)
    if moment <= now:
        raise BuildError("the bundle would already be expired")
    return moment
