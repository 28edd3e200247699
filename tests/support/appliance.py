"""The built appliance image under qemu, for the image test.

The test boots a private copy of ``image/out/portcullis-<version>.raw``: files it needs are
put on that copy's ESP (network.conf, domains.conf: the appliance's own provisioning path)
and a test-only report unit is written into that copy's root file system with debugfs.  The
production image has no such channel; the unit prints diagnostics (failed units, listening
sockets, ``systemd-analyze security``) on the serial console once the boot has finished.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests/artifacts"
sys.path.insert(0, str(REPO / "image"))

from builder import disk, paths, qemu  # noqa: E402

REPORT_BEGIN = "=== portcullis-test-report begin ==="
REPORT_END = "=== portcullis-test-report end ==="

# A QR code saying https://qr.example.test/ (qrencode -s 3 -m 2), read in the report by the
# gateway's own QR helper under the gateway unit's system call filter and sandbox.
QR_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAFcAAABXAQMAAABLBksvAAAABlBMVEUAAAD///+l2Z/dAAAAAnRSTlP//8i138c"
          "AAAAJcEhZcwAACxIAAAsSAdLdfvwAAADiSURBVDiNrdMxjsQgDAXQH6WgSy6AxDXouBJcIE4uMHMlOq6BNBfY6"
          "VJY4yXaSGmCt9ilegWSzbeBXAd/MQNu9e4LoL5J3Me4t7DiaNwakLJVbaP/3Smz7lZ3268ebg3YVGw833LrI4B"
          "nuTK5M8/7uGVQViyfwEleD4x98+QxGURfqWtZPcfAtLPiZxk34UEUH5dTqUt4Sd8kdhBMqNT3EnguvHirmIqTD"
          "BgnXbcceRZLRfo+5jKUNppzdrduvU0BpLrt2wNnD4q30rKqpPotoN0qbnURKgwr/tm3tCv+p7/8DcdiNjU9e8k"
          "gAAAAAElFTkSuQmCC")
QR_TEXT = "https://qr.example.test/"
_SANDBOX = " ".join(f"-p '{p}'" for p in (
    "User=portcullis", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
    "PrivateDevices=yes", "MemoryDenyWriteExecute=yes", "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service", "SystemCallFilter=~@privileged @resources",
    "SystemCallErrorNumber=EPERM", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"))

REPORT_SCRIPT = f"""#!/bin/sh
# Test-only (written into the test's copy of the image by tests/support/appliance.py).
# Lines go through the kernel log: agetty flushes what is queued on the serial line when it
# starts, the kernel's console output is never flushed.
state=$(systemctl is-system-running --wait)
# The gateway and the web UI (Type=exec) are "started" before Python has bound ports 25
# and 80 (under emulation without KVM, imports alone take tens of seconds): a minute each.
for port in 25 80; do
    for i in $(seq 30); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 2; done
done
sysctl -q -w kernel.printk_devkmsg=on
{{
echo "{REPORT_BEGIN}"
echo "state: $state"
echo "--- failed"
systemctl list-units --failed --plain --no-legend --no-pager
echo "--- listening"
ss -Hltun
echo "--- security"
for unit in $(systemctl list-unit-files --no-legend 'portcullis-*.service' | cut -d' ' -f1); do
    systemd-analyze security --no-pager "$unit" \\
        | sed -n 's/^.*Overall exposure level for \\(.*\\): \\([0-9.]*\\).*$/\\1 \\2/p'
done
echo "--- mounts"
findmnt -no TARGET,FSTYPE,OPTIONS --target /tmp
findmnt -no TARGET,FSTYPE,OPTIONS --target /dev/shm
echo "--- disk"
df -B1M --output=target,size /
echo "--- files"
stat -c '%n %a %U:%G' /var/lib/portcullis/setup-code /etc/ssh/ssh_host_*_key \
    /etc/ssh/ssh_host_*_key.pub /var/lib/portcullis/tls/*
echo "--- services"
systemctl status --no-pager --lines=0 'portcullis-*' postfix@- unbound ssh | grep -E '^[^ ]|Active:'
echo "--- qr"
systemd-run --quiet --pipe --wait {_SANDBOX} /opt/portcullis/current/bin/python -c \\
    "import base64; from portcullis.antivirus.qrcodes import Scanner; \\
print(Scanner().codes(base64.b64decode('{QR_PNG}')))"
echo "--- journal"
journalctl -b -p warning --no-pager -o short-monotonic | tail -n 40
journalctl -b --no-pager -o short-monotonic -u 'portcullis-*' -u systemd-repart \\
    | tail -n 60
for unit in $(systemctl list-units --failed --plain --no-legend --no-pager | cut -d' ' -f1); do
    echo "--- log of $unit"
    journalctl -b --no-pager -o short-monotonic -u "$unit" | tail -n 25
done
echo "{REPORT_END}"
}} 2>&1 | while IFS= read -r line; do printf '<5>report: %s\\n' "$line" > /dev/kmsg; done
"""

REPORT_UNIT = """[Unit]
Description=Test-only diagnostics on the serial console
After=multi-user.target getty.target

[Service]
Type=exec
ExecStart=/usr/local/sbin/portcullis-test-report

[Install]
WantedBy=multi-user.target
"""


def root_partition_spec(image: Path) -> str:
    root = next(p for p in disk.partitions(image) if p.type == disk.ROOT_X86_64_TYPE)
    return f"{image}?offset={root.offset}"


def inject_report(image: Path, work: Path) -> None:
    """Add the test-only report unit to the root file system of this copy of the image."""
    script, unit = work / "report.sh", work / "report.service"
    script.write_text(REPORT_SCRIPT)
    script.chmod(0o755)
    unit.write_text(REPORT_UNIT)
    unit.chmod(0o644)
    commands = work / "debugfs.cmd"
    commands.write_text(
        f"write {script} /usr/local/sbin/portcullis-test-report\n"
        f"write {unit} /etc/systemd/system/portcullis-test-report.service\n"
        "symlink /etc/systemd/system/multi-user.target.wants/portcullis-test-report.service "
        "/etc/systemd/system/portcullis-test-report.service\n")
    result = subprocess.run(["debugfs", "-w", "-f", str(commands), root_partition_spec(image)],
                            capture_output=True, text=True, check=True)
    if "rror" in result.stderr.replace("debugfs 1.", ""):
        raise RuntimeError(f"debugfs: {result.stderr}")


@dataclass
class Appliance:
    """A booted copy of the image with loopback forwards; stop() ends its qemu."""

    vm: qemu.Vm
    work: Path
    smtp_port: int
    http_port: int
    ssh_port: int

    def serial(self) -> str:
        return self.vm.serial_text()

    def wait_for_serial(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.serial(), re.DOTALL)
            if match:
                return match
            if not self.vm.running():
                raise RuntimeError("qemu exited; serial log:\n" + self.serial()[-3000:])
            time.sleep(2)
        raise TimeoutError(f"no {pattern!r} on the serial console after {timeout:.0f} s; "
                           "last lines:\n" + self.serial()[-3000:])

    def report(self, timeout: float) -> dict[str, str]:
        """The sections of the test-only report, once the boot has finished."""
        match = self.wait_for_serial(re.escape(REPORT_BEGIN) + r"(.*?)" + re.escape(REPORT_END),
                                     timeout)
        sections: dict[str, str] = {}
        name = "head"
        for raw in match.group(1).replace("\r", "").splitlines():
            ours = re.search(r"report: (.*)$", raw)
            if not ours:
                continue   # another kernel or console message in between
            line = ours.group(1)
            if line.startswith("--- "):
                name = line[4:].strip()
                sections[name] = ""
            else:
                sections[name] = sections.get(name, "") + line + "\n"
        return sections

    def stop(self) -> None:
        self.vm.stop()
        shutil.rmtree(self.work, ignore_errors=True)


def boot(*, esp_files: dict[str, str], forwards: dict[str, int], guest_forwards: dict[int, int],
         grow_to: str = "3G") -> Appliance:
    """Boot a private copy of the built image (TCG) with the given ESP files."""
    image = qemu.built_image()
    work = Path(tempfile.mkdtemp(prefix="portcullis-image-test-", dir="/var/tmp"))
    copy = work / image.name
    subprocess.run(["cp", "--sparse=always", str(image), str(copy)], check=True)
    subprocess.run(["truncate", "-s", grow_to, str(copy)], check=True)
    for path, content in esp_files.items():
        disk.write_esp_file(copy, path, content)
    inject_report(copy, work)
    variables = work / "vars.fd"
    shutil.copyfile(qemu.firmware()[1], variables)
    spec = qemu.VmSpec(disk=copy, disk_format="raw", variables=variables,
                       forwards={25: forwards["smtp"], 80: forwards["http"], 22: forwards["ssh"]},
                       guest_forwards=guest_forwards, serial=work / "serial.log", accel="tcg")
    vm = qemu.Vm(spec).start()
    return Appliance(vm, work, forwards["smtp"], forwards["http"], forwards["ssh"])


__all__ = ["Appliance", "boot", "paths", "qemu"]


def metrics_update(**values: object) -> None:
    """Merge figures into tests/artifacts/image-metrics.json (the image tests' figures)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "image-metrics.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(values)
    path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
