"""The deliverables in image/out: raw, qcow2, vmdk, package manifest, SHA-256 sums."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from builder import paths
from builder.progress import Progress


def clear_old(out: Path, keep_prefix: str) -> None:
    """Remove outputs of other versions (each set is several GB)."""
    for path in out.glob("portcullis-*"):
        if not path.name.startswith(keep_prefix + "."):
            path.unlink()


def manifest(rootfs: Path, version: str) -> dict[str, object]:
    """Every Debian package and every Python distribution of the release venv."""
    listing = subprocess.run(
        ["dpkg-query", f"--admindir={rootfs}/var/lib/dpkg", "--show",
         "--showformat=${Package}\t${Version}\t${Architecture}\n"],
        capture_output=True, text=True, check=True).stdout
    debian = [dict(zip(("name", "version", "architecture"), line.split("\t"), strict=True))
              for line in sorted(listing.splitlines()) if line]
    python = []
    release = rootfs / "opt/portcullis/releases" / version
    for dist_info in sorted(release.glob("lib/python3*/site-packages/*.dist-info")):
        name, _, dist_version = dist_info.name.removesuffix(".dist-info").partition("-")
        python.append({"name": name, "version": dist_version})
    return {"image": f"portcullis-{version}", "version": version,
            "debian": debian, "python": python}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def write(progress: Progress, version: str, raw_built: Path, rootfs: Path) -> dict[str, Path]:
    out = paths.OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    name = paths.image_name(version)
    clear_old(out, name)
    files = {"raw": out / f"{name}.raw", "qcow2": out / f"{name}.qcow2",
             "vmdk": out / f"{name}.vmdk", "manifest": out / f"{name}.manifest.json"}
    for path in files.values():
        path.unlink(missing_ok=True)
    shutil.move(raw_built, files["raw"])
    progress.run(["qemu-img", "convert", "-O", "qcow2", "-c", "-o", "compression_type=zstd",
                  files["raw"], files["qcow2"]])
    # streamOptimized: the compressed VMDK that VMware and VirtualBox import (and OVAs carry).
    progress.run(["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized",
                  files["raw"], files["vmdk"]])
    files["manifest"].write_text(json.dumps(manifest(rootfs, version), indent=2) + "\n")
    sums = out / f"{name}.SHA256SUMS"
    sums.write_text("".join(f"{sha256(path)}  {path.name}\n" for path in files.values()
                            if path.exists()))
    files["sums"] = sums
    for path in files.values():
        if path.exists():
            progress.info(f"{path}  {path.stat().st_size / 1024 ** 2:,.0f} MiB")
    return files
