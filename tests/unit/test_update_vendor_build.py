"""portcullis-vendor build: an app bundle's dependency wheels are the files
requirements.lock pins (name, version, sha256), or no bundle is built."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from portcullis.update.bundle import BundleReader
from portcullis_vendor import cli, pins
from portcullis_vendor.build import BuildError, app_bundle, expiry

pytestmark = pytest.mark.updates


def wheel(directory: Path, name: str, content: bytes = b"") -> Path:
    path = directory / name
    path.write_bytes(content or name.encode())
    return path


@pytest.fixture
def wheels(tmp_path: Path) -> dict[str, Path]:
    """The release, the reviewed waitress, and a lock pinning waitress (file: lock)."""
    made = {"app": wheel(tmp_path, "portcullis-0.2.0-py3-none-any.whl"),
            "waitress": wheel(tmp_path, "waitress-3.0.2-py3-none-any.whl")}
    made["lock"] = tmp_path / "requirements.lock"
    pins.write(made["lock"], [pins.Pin("waitress", "3.0.2",
                                       (pins.sha256(made["waitress"]),))], header="test")
    return made


def carried(bundle: Path) -> set[str]:
    with BundleReader(bundle) as reader:
        return reader.payload_paths()


def build(tmp_path: Path, *wheel_files: Path, lock: Path | None) -> Path:
    out = tmp_path / "app.bundle"
    app_bundle(out, wheels=wheel_files, lock=lock, expires=expiry(1, None))
    return out


def test_a_dependency_wheel_the_lock_pins_is_carried(tmp_path, wheels):
    bundle = build(tmp_path, wheels["app"], wheels["waitress"], lock=wheels["lock"])

    assert carried(bundle) == {wheels["app"].name, wheels["waitress"].name}


@pytest.mark.parametrize(("name", "content", "message"), [
    ("evil_dep-1.0-py3-none-any.whl", b"", r"evil_dep-1\.0-py3-none-any\.whl: .* does not "
                                           r"pin evil-dep: a dependency nobody reviewed"),
    ("waitress-3.0.3-py3-none-any.whl", b"", r"waitress-3\.0\.3-py3-none-any\.whl: waitress "
                                             r"3\.0\.3 is not the version .* pins "
                                             r"\(waitress==3\.0\.2\)"),
    ("waitress-3.0.2-py3-none-any.whl", b"changed", r"waitress-3\.0\.2-py3-none-any\.whl: "
                                                    r"sha256 [0-9a-f]{64} is not one .* pins "
                                                    r"for waitress==3\.0\.2"),
])
def test_a_dependency_wheel_the_lock_does_not_pin_is_refused(tmp_path, wheels, name,
                                                              content, message):
    other = tmp_path / "other"
    other.mkdir()
    dependency = wheel(other, name, content)

    with pytest.raises(BuildError, match=message):
        build(tmp_path, wheels["app"], dependency, lock=wheels["lock"])
    assert not (tmp_path / "app.bundle").exists()


def test_dependency_wheels_without_a_lock_are_refused(tmp_path, wheels):
    with pytest.raises(BuildError, match=r"waitress-3\.0\.2-py3-none-any\.whl\) are checked "
                                         r"against the requirements\.lock"):
        build(tmp_path, wheels["app"], wheels["waitress"], lock=None)
    # The release alone (and a pip to build it with) needs no lock.
    pip = wheel(tmp_path, "pip-24.0-py3-none-any.whl")
    assert carried(build(tmp_path, wheels["app"], pip, lock=None)) == {wheels["app"].name,
                                                                       pip.name}


def test_vendor_cli_checks_wheels_against_the_lock_and_names_the_wheel(tmp_path, wheels,
                                                                       capsys):
    (tmp_path / "forged").mkdir()
    forged = wheel(tmp_path / "forged", "waitress-3.0.2-py3-none-any.whl", b"not reviewed")
    out = tmp_path / "app.bundle"

    status = cli.main(["build", "--target", "app", "--wheel", str(wheels["app"]),
                       "--wheel", str(forged), "--lock", str(wheels["lock"]),
                       "--out", str(out)])

    assert status == 2
    error = capsys.readouterr().err
    digest = hashlib.sha256(b"not reviewed").hexdigest()
    assert f"waitress-3.0.2-py3-none-any.whl: sha256 {digest} is not one" in error
    assert not out.exists()
