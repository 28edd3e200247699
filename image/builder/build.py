"""`make image`: the appliance image, from a fresh Debian 12 host to image/out/.

Stage 1 (mkosi, image/mkosi.rootfs) installs the Debian packages into a directory tree;
the Ansible roles (image/playbook.yml) are applied to that tree from the host; stage 2
(mkosi, image/mkosi.disk) makes it a bootable UEFI disk.  Repositories come from the host's
own apt sources; caches and the mkosi tools tree live under /var/cache/portcullis-image.
"""

from __future__ import annotations

import json
import time

from builder import aptsources, hostdeps, mkosi, outputs, paths, preflight, roles, units, wheelhouse
from builder.progress import Progress

STEPS = 9


def build() -> dict[str, object]:
    version = paths.portcullis_version()
    name = paths.image_name(version)
    paths.OUT_DIR.mkdir(parents=True, exist_ok=True)
    progress = Progress(STEPS, paths.OUT_DIR / "build.log")
    print(f"make image: Portcullis {version}; tool output goes to {progress.log_path}")

    with progress.step("Checking the build host"):
        preflight.check_host()
        for line in preflight.check_disk_space():
            progress.info(line)
        cold = not paths.TOOLS_TREE.exists()

    with progress.step("Installing the build tools (Debian packages, mkosi, Ansible)"):
        paths.CACHE.mkdir(parents=True, exist_ok=True)
        hostdeps.ensure_packages(progress, hostdeps.BUILD_PACKAGES)
        preflight.check_tools(["bwrap", "qemu-img", "dpkg-query", "systemctl", "systemd-analyze",
                               "mount", "chroot"])
        codename = aptsources.host_codename()
        mirrors = aptsources.find_mirrors(aptsources.read_host_sources(), codename)
        hostdeps.ensure_mkosi(progress, mirrors, codename)
        hostdeps.ensure_ansible(progress)

    with progress.step("Deriving the Debian repositories from the host's apt sources"):
        mkosi.write_repositories(mirrors)
        progress.info(f"archive {mirrors.archive}; security {mirrors.security or '(none)'}")
        progress.info(f"image {paths.IMAGE_RELEASE}, tools tree {paths.TOOLS_RELEASE}")

    with progress.step("Building the root file system (mkosi stage 1"
                       + (", first build: also the tools tree)" if cold else ")")):
        skeletons = [mkosi.STAGE_ROOTFS / "mkosi.skeleton", paths.GENERATED / "image-apt"]
        if mkosi.invalidate_stale_cache(*skeletons):
            progress.info("skeleton trees changed: the package cache of the image is rebuilt")
        packages = roles.role_packages()
        progress.info("packages declared by the roles: " + " ".join(packages))
        mkosi.run(progress, mkosi.STAGE_ROOTFS,
                  *(f"--skeleton-tree={tree}" for tree in skeletons),
                  f"--extra-tree={paths.REPO / 'overlay'}",
                  *(f"--package={p}" for p in packages))

    with progress.step("Building the Portcullis wheelhouse"):
        python = wheelhouse.image_python(paths.ROOTFS)
        wheels = wheelhouse.build(progress, version, python)

    with progress.step("Applying the Ansible roles (image/playbook.yml, chroot)"):
        roles.apply(progress, paths.ROOTFS, {
            "mailfilter_release_version": version,
            "mailfilter_release_wheelhouse": str(wheels),
        })

    with progress.step("Freezing unit presets; checking unit sandboxing"):
        enabled = units.freeze_presets(paths.ROOTFS)
        progress.info(f"{len(enabled)} units enabled: " + " ".join(enabled))
        exposures = units.security_report(progress, paths.ROOTFS,
                                          paths.OUT_DIR / f"{name}.security.txt")

    with progress.step("Building the bootable disk (mkosi stage 2)"):
        mkosi.run(progress, mkosi.STAGE_DISK, f"--base-tree={paths.ROOTFS}",
                  f"--output={name}", f"--image-version={version}", "--image-id=portcullis")

    with progress.step("Writing the outputs to image/out"):
        files = outputs.write(progress, version, paths.MKOSI_OUTPUT / f"{name}.raw",
                              paths.ROOTFS)

    summary = {"version": version, "cold": cold, "seconds": round(progress.elapsed()),
               "steps": {k: round(v) for k, v in progress.timings.items()},
               "sizes": {k: p.stat().st_size for k, p in files.items()},
               "exposure": exposures, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (paths.OUT_DIR / f"{name}.build.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"make image: done in {progress.elapsed() / 60:.1f} min: {files['raw']}")
    return summary
