"""requirements.lock, the reviewed pins of the appliance's Python dependencies: one
``name==version`` per project with the sha256 of each file allowed (pip's requirements
format with ``--hash``).

One reader and writer for everybody who uses the lock: the image build (``make lock``
writes it, ``make image`` fetches exactly its files) and ``portcullis-vendor build``, which
refuses an app bundle whose dependency wheels are not the pinned files.  Standard library
only: the image builder runs it with the build host's own Python.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?P<options>.*)$")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


class PinsError(ValueError):
    """A lock that cannot be read, or a file it does not allow; the message says which."""


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...]


def normalize(name: str) -> str:
    """A project name as the index knows it (PEP 503): lower case, runs of -_. as -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read(path: Path) -> dict[str, Pin]:
    """The pins of a lock file (pip's requirements format, continued lines joined)."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    pins = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not line:
            continue
        match = _PIN.match(line)
        if not match:
            raise PinsError(f"{path}:{number}: not `name==version --hash=sha256:...`: {line}")
        name = normalize(match["name"])
        pins[name] = Pin(name, match["version"], tuple(_HASH.findall(match["options"])))
    return pins


def write(out: Path, pins: Iterable[Pin], header: str) -> None:
    lines = [f"# {line}" for line in header.splitlines()]
    for pin in pins:
        lines.append(f"{pin.name}=={pin.version} \\")
        lines += [f"    --hash=sha256:{h}" + (" \\" if i < len(pin.hashes) - 1 else "")
                  for i, h in enumerate(pin.hashes)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def distribution_of(filename: str) -> tuple[str, str]:
    """(normalized name, version) from a wheel's or an sdist's file name."""
    if filename.endswith(".whl"):
        name, version = filename.split("-")[:2]
    else:
        stem = re.sub(r"\.(tar\.gz|tar\.bz2|zip)$", "", filename)
        name, _, version = stem.rpartition("-")
    return normalize(name), version


def check_file(path: Path, pins: dict[str, Pin], lock_name: str) -> Pin:
    """The pin ``path`` is: its project at the pinned version with a pinned sha256;
    PinsError naming the file and what differs otherwise."""
    name, version = distribution_of(path.name)
    pin = pins.get(name)
    if pin is None:
        raise PinsError(f"{path.name}: {lock_name} does not pin {name}: a dependency "
                        "nobody reviewed")
    if version != pin.version:
        raise PinsError(f"{path.name}: {name} {version} is not the version {lock_name} "
                        f"pins ({name}=={pin.version})")
    digest = sha256(path)
    if digest not in pin.hashes:
        raise PinsError(f"{path.name}: sha256 {digest} is not one {lock_name} pins for "
                        f"{name}=={pin.version}: not the reviewed file")
    return pin
