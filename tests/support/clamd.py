"""A real clamd for the tests, with a tiny signature database the tests write.

No Internet here, so no official signatures: the database is EICAR's MD5 (``.hdb``, made
with ``sigtool --md5`` like an administrator would) plus body patterns (``.ndb``) for
made-up worms.  clamd runs in the foreground on a local socket in its own directory, as
the ``clamav`` user, with ``AlertEncrypted`` on as the appliance has it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support import process
from tests.support.attachments import executable

# The standard anti-virus test file, assembled so that this source file is not itself
# flagged by scanners on developers' machines.
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!" + b"$H+H*")
EICAR_NAME = "Portcullis.Test.EICAR"

# A made-up worm: any file containing this marker is "infected" by the .ndb database.
WORM_MARKER = b"PORTCULLIS-TEST-WORM-BODY-7f3a"
WORM_NAME = "Worm.Test.Zippwd-26"
# A made-up trojan known by its MD5, as most real signatures are: found only when clamd
# has the file itself (the bytes inside an archive it does not extract are not enough).
HASHED = executable() + b"portcullis hashed test file\n" * 10     # with a real PE header
HASHED_NAME = "Trojan.Test.Hashed"


class Clamd:
    def __init__(self, root: Path, options: dict[str, str] | None = None) -> None:
        """``options``: clamd.conf settings replacing or adding to the defaults below."""
        self.root = root
        self.db_dir = root / "db"
        self.run_dir = root / "run"
        self.socket = self.run_dir / "clamd.ctl"
        self.config = root / "clamd.conf"
        self.log = root / "clamd.log"
        self.process: subprocess.Popen | None = None
        for directory in (self.db_dir, self.run_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._write_database()
        settings = {
            "Foreground": "yes",
            "LocalSocket": str(self.socket),
            "DatabaseDirectory": str(self.db_dir),
            "LogFile": str(self.log),
            "LogTime": "yes",
            "AlertEncrypted": "yes",
            "HeuristicScanPrecedence": "no",
            "StreamMaxLength": "64M",
            "MaxThreads": "4",
            "User": "clamav",
            **(options or {}),
        }
        self.config.write_text("".join(f"{k} {v}\n" for k, v in settings.items()))
        clamav = pwd.getpwnam("clamav")
        for path in (self.root, self.db_dir, self.run_dir):
            os.chown(path, clamav.pw_uid, clamav.pw_gid)

    def _write_database(self) -> None:
        sample = self.root / "eicar.sample"
        sample.write_bytes(EICAR)
        # sigtool prints MD5:SIZE:FILENAME; the file name becomes the signature name.
        line = subprocess.run(["sigtool", "--md5", str(sample)], capture_output=True,
                              text=True, check=True).stdout.strip()
        sample.unlink()
        md5, size, _ = line.split(":", 2)
        hashed = f"{hashlib.md5(HASHED).hexdigest()}:{len(HASHED)}:{HASHED_NAME}"
        (self.db_dir / "portcullis-test.hdb").write_text(
            f"{md5}:{size}:{EICAR_NAME}\n{hashed}\n")
        self.add_signature(WORM_NAME, WORM_MARKER, reload=False)

    def add_signature(self, name: str, marker: bytes, *, reload: bool = True) -> None:
        """Add a body-pattern signature (in its own .ndb file, as an update would)."""
        path = self.db_dir / f"portcullis-test-{name.lower().replace('.', '-')}.ndb"
        path.write_text(f"{name}:0:*:{marker.hex()}\n")
        shutil.chown(path, "clamav", "clamav")

    def start(self) -> Clamd:
        self.process = subprocess.Popen(["clamd", "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"clamd exited ({self.process.returncode}):\n{self.log_text()}")
            if self.ping():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"clamd did not answer:\n{self.log_text()}")

    def ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(str(self.socket))
                sock.sendall(b"zPING\0")
                return sock.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """Take clamd away abruptly, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.socket.unlink(missing_ok=True)

    def stop(self) -> None:
        process.stop(self.process)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def gateway_config(self) -> str:
        """The ``[clamav]`` section that points a gateway at this clamd."""
        return (f'[clamav]\naddress = "{self.socket}"\ndatabase_dir = "{self.db_dir}"\n'
                f'update_request = "{self.root / "update-request"}"\n'
                "connect_timeout = 2\nscan_timeout = 30\n")
