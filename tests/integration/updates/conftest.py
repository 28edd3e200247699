"""Fixtures of the update tests: wheels and keys built once, one lab, a fresh appliance
per test (see lab.py)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.updates.lab import (
    BASE_VERSION,
    SYSTEM_PYTHON,
    Keys,
    Lab,
    build_wheel,
    pip_wheel_of,
    release_base,
    source_tree,
    system_pip_wheel,
    vendor,
)
from tests.support import dirs
from tests.support.netns import network


class Builds:
    """Wheels of the application at several versions, the vendor's keys, and signed
    bundles made from them with ``portcullis-vendor build`` and ``sign`` (cached)."""

    def __init__(self, work: Path, pip_wheel: Path) -> None:
        self.work = work
        self._counter = 0
        self._apps: dict[tuple[str, tuple[str, ...], bool], Path] = {}
        self.keys = Keys.create(self._dir("keys"))
        self.pip_wheel = pip_wheel        # the appliance's
        self.base = release_base(work / "release-base", self.wheel(BASE_VERSION), pip_wheel)

    def _dir(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def source(self, version: str, broken: bool = False) -> Path:
        label = f"{version}-broken" if broken else version
        path = self.work / "src" / label
        return path if path.exists() else source_tree(path, version, broken=broken)

    def wheel(self, version: str, broken: bool = False) -> Path:
        label = f"{version}-broken" if broken else version
        found = sorted((self.work / "wheels" / label).glob("portcullis-*.whl"))
        return found[0] if found else build_wheel(self.source(version, broken),
                                                  self.work / "wheels" / label)

    def path(self, name: str) -> Path:
        self._counter += 1
        return self._dir("bundles") / f"{self._counter}-{name}"

    def sign(self, bundle: Path, *signers: str) -> Path:
        if signers:
            keys = [a for s in signers for a in ("--key", str(self.keys.signing(s)))]
            vendor("sign", *keys, str(bundle))
        return bundle

    def app(self, version: str, *signers: str, broken: bool = False) -> Path:
        """An app bundle of ``version`` signed by ``signers`` (none: unsigned)."""
        key = (version, signers, broken)
        if key not in self._apps:
            self._apps[key] = self._app(version, signers, broken)
        return self._apps[key]

    def _app(self, version: str, signers: tuple[str, ...], broken: bool) -> Path:
        out = self.path(f"app-{version}.bundle")
        vendor("build", "--target", "app", "--wheel", str(self.wheel(version, broken)),
               "--out", str(out))
        return self.sign(out, *signers)

    def app_with_pip(self, version: str, *signers: str, pip: Path | None = None) -> Path:
        """An app bundle that also carries a pip wheel (``pip``; by default the test venv's,
        newer than the appliance's) to build the release with."""
        pip = pip or pip_wheel_of(sys.executable, self.work / "wheels" / "pip")
        out = self.path(f"app-{version}-with-{pip.stem}.bundle")
        vendor("build", "--target", "app", "--wheel", str(self.wheel(version)), "--wheel",
               str(pip), "--out", str(out))
        return self.sign(out, *signers)

    def expired_app(self, version: str, *signers: str) -> Path:
        """A genuine, signed bundle whose time is up (built with the vendor's library:
        the CLI refuses to build one that is already expired)."""
        from portcullis_vendor.build import app_bundle

        out = self.path(f"app-{version}-expired.bundle")
        now = datetime.now(UTC)
        app_bundle(out, wheels=(self.wheel(version),), created=now - timedelta(days=40),
                   expires=now - timedelta(days=10))
        return self.sign(out, *signers)

    def files(self, target: str, version: str, files: dict[str, bytes], *signers: str,
              extra: tuple[str, ...] = ()) -> Path:
        """A clamav or config bundle carrying ``files`` (name -> content); a config bundle
        is for one appliance: ``extra=lab.bound_to(name)``."""
        holder = self._dir(f"payload-{self._counter + 1}")
        paths = []
        for name, content in files.items():
            (holder / name).write_bytes(content)
            paths.append(str(holder / name))
        out = self.path(f"{target}-{version}.bundle")
        vendor("build", "--target", target, "--version", version, "--out", str(out), *extra,
               *paths)
        return self.sign(out, *signers)

    def rotation(self, version: int, keys: list[str], *signers: str) -> Path:
        """A trust-root bundle making ``keys`` the trusted ones."""
        root = self.path(f"trust-{version}.json")
        vendor("trust-root", "--version", str(version), "--out", str(root),
               *[a for k in keys for a in ("--key", str(self.keys.public(k)))])
        out = self.path(f"trust-root-{version}.bundle")
        vendor("build", "--target", "trust-root", "--trust-root", str(root), "--out", str(out))
        return self.sign(out, *signers)


@pytest.fixture(scope="session")
def builds(root_required: None) -> Iterator[Builds]:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail(f"{SYSTEM_PYTHON} is missing (Debian's python3.11, python3-venv)")
    pip_wheel = system_pip_wheel()
    if pip_wheel is None:
        pytest.fail("no pip wheel in /usr/share/python-wheels (Debian's python3-pip-whl)")
    work = dirs.daemon_dir("update-builds")
    yield Builds(work, pip_wheel)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def lab(builds: Builds) -> Iterator[Lab]:
    with network() as net:
        the_lab = Lab(net, builds.base, builds.keys, builds.pip_wheel)
        try:
            yield the_lab.start()
        finally:
            the_lab.stop()


@pytest.fixture
def appliance(lab: Lab) -> Lab:
    """The lab's appliance reset to a fresh install of the base release."""
    lab.reset()
    return lab
