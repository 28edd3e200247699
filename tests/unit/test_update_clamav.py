"""Signature files put into clamav's own directory by root: links planted there by the
clamav account (whose daemons read hostile files) must not redirect root's writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portcullis.update import agent
from portcullis.update.clamav import ClamavDatabase, new_backup_name
from portcullis.update.state import UpdateState
from tests.support.dirs import daemon_dir
from tests.support.smalldisk import run_on_small_disk

pytestmark = pytest.mark.updates

NOBODY = 65534


def as_nobody(action) -> None:
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
            status = 0
        finally:
            os._exit(status)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


@pytest.fixture
def database() -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root, as the update installer runs")
    directory = daemon_dir("clamav-db")  # pytest's own folders are closed to nobody
    os.chown(directory, NOBODY, NOBODY)
    return directory


def test_links_planted_in_the_database_directory_are_replaced_not_followed(tmp_path, database):
    victim = database.parent / "trust.json"
    victim.write_text("root's own\n")
    os.chmod(victim, 0o600)

    def plant() -> None:
        for name in (".daily.ndb.new", "main.ndb", ".portcullis-update-x"):
            os.symlink(victim, database / name)
    as_nobody(plant)
    new = tmp_path / "new.ndb"
    new.write_bytes(b"Test.Sig:0:*:414243\n")

    installed = ClamavDatabase(database).install({"daily.ndb": new, "main.ndb": new},
                                                     new_backup_name())
    installed.commit()
    assert victim.read_text() == "root's own\n"
    assert (victim.stat().st_uid, victim.stat().st_mode & 0o777) == (0, 0o600)
    for name in ("daily.ndb", "main.ndb"):
        placed = (database / name).lstat()
        assert (database / name).is_file() and not (database / name).is_symlink()
        assert (placed.st_uid, placed.st_mode & 0o777) == (NOBODY, 0o644)
        assert (database / name).read_bytes() == new.read_bytes()


def test_a_failed_install_puts_back_what_was_there_and_leaves_nothing(tmp_path, database):
    (database / "daily.ndb").write_bytes(b"old\n")
    (database / "main.ndb").symlink_to("main.cvd")  # kept as the link it was
    new = tmp_path / "new.ndb"
    new.write_bytes(b"Test.Sig:0:*:414243\n")
    with pytest.raises(FileNotFoundError):
        ClamavDatabase(database).install({"daily.ndb": new, "main.ndb": new,
                                          "bytecode.cbc": tmp_path / "absent.cbc"},
                                         new_backup_name())
    assert sorted(os.listdir(database)) == ["daily.ndb", "main.ndb"]
    assert (database / "daily.ndb").read_bytes() == b"old\n"
    assert os.readlink(database / "main.ndb") == "main.cvd"

    installed = ClamavDatabase(database).install({"daily.ndb": new, "extra.ndb": new},
                                                     new_backup_name())
    installed.rollback()
    assert sorted(os.listdir(database)) == ["daily.ndb", "main.ndb"]
    assert (database / "daily.ndb").read_bytes() == b"old\n"


OLD_SIGNATURE = b"Portcullis.Test.Old:0:*:6f6c64206f6c64\n"
NEW_SIGNATURE = b"Portcullis.Test.New:0:*:6e6577206e6577\n"
# Root's installer applies a signature bundle and dies (as in a power cut) during its
# health check, after the files are in place and before they were judged.
CUT_OFF = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from portcullis.update import agentconfig
from portcullis.update.bundle import FileEntry, HealthCheck, Manifest, VerifiedBundle
from portcullis.update.targets import ClamavTarget

now = datetime.now(UTC)
files = {"daily.ndb": Path(sys.argv[2]), "extra.ndb": Path(sys.argv[2])}
manifest = Manifest("clamav", "27100", now, now + timedelta(days=1),
                    tuple(FileEntry(name, "0" * 64, 1) for name in files),
                    HealthCheck(("sh", "-c", "kill -KILL $PPID"), 10))
ClamavTarget(agentconfig.load(sys.argv[1])).apply(
    VerifiedBundle(manifest, manifest.to_bytes(), [], ["k1"], files))
"""


def signature_agent_toml(tmp_path: Path, database: Path) -> Path:
    """An agent.toml for signature bundles into ``database``, with no clamd running."""
    config = tmp_path / "agent.toml"
    config.write_text(f"""[agent]
clamav_database_dir = "{database}"
clamd_socket = "{tmp_path / 'no-clamd.ctl'}"
health_user = ""
state_dir = "{tmp_path / 'state'}"
releases_dir = "{tmp_path / 'releases'}"
current_link = "{tmp_path / 'current'}"
""")
    return config


def cut_off_signature_update(tmp_path: Path, database: Path) -> Path:
    """The update cut off as above; the agent.toml of the appliance it happened on."""
    (database / "daily.ndb").write_bytes(OLD_SIGNATURE)
    (database / "main.ndb").write_bytes(OLD_SIGNATURE.replace(b"Old", b"Main"))
    new = tmp_path / "new.ndb"
    new.write_bytes(NEW_SIGNATURE)
    config = signature_agent_toml(tmp_path, database)
    killed = subprocess.run([sys.executable, "-c", CUT_OFF, str(config), str(new)],
                            capture_output=True, text=True, check=False)
    assert killed.returncode == -9, killed.stderr
    assert (database / "daily.ndb").read_bytes() == NEW_SIGNATURE   # what clamd would load
    assert [n for n in os.listdir(database) if n.startswith(".portcullis-update-")]
    return config


def test_a_signature_update_cut_off_before_its_health_check_is_undone_at_the_next_boot(
        tmp_path, database):
    config = cut_off_signature_update(tmp_path, database)

    assert agent.main(["--config", str(config), "recover"]) == 0   # the boot unit

    assert sorted(os.listdir(database)) == ["daily.ndb", "main.ndb"]   # no backup left
    assert (database / "daily.ndb").read_bytes() == OLD_SIGNATURE
    assert UpdateState(tmp_path / "state").installed("clamav") is None   # may come again
    assert os.listdir(tmp_path / "state") == []                          # nothing kept
    ClamavDatabase(database).validate_installed({})     # clamd loads what is there


def test_a_signature_update_cut_off_once_recorded_is_completed_at_the_next_boot(
        tmp_path, database):
    config = cut_off_signature_update(tmp_path, database)
    # as if the power went right after the version was recorded as applied
    UpdateState(tmp_path / "state").record("clamav", "27100")

    assert agent.main(["--config", str(config), "recover"]) == 0

    assert sorted(os.listdir(database)) == ["daily.ndb", "extra.ndb", "main.ndb"]
    assert (database / "daily.ndb").read_bytes() == NEW_SIGNATURE
    assert os.listdir(tmp_path / "state") == ["state.json"]
    ClamavDatabase(database).validate_installed({})


# Applies a signature bundle whose files do not fit in the database directory (a 64 KiB
# tmpfs, in a mount namespace of its own); prints the outcome and what is left there.
FULL_DISK = """
import json, os, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from portcullis.update import agentconfig
from portcullis.update.bundle import FileEntry, Manifest, VerifiedBundle
from portcullis.update.targets import ClamavTarget

config = agentconfig.load(sys.argv[1])
config.clamav_database_dir.joinpath("daily.ndb").write_bytes(sys.argv[3].encode())
now = datetime.now(UTC)
files = {"daily.ndb": Path(sys.argv[2])}
manifest = Manifest("clamav", "27100", now, now + timedelta(days=1),
                    (FileEntry("daily.ndb", "0" * 64, 1),))
outcome = ClamavTarget(config).apply(
    VerifiedBundle(manifest, manifest.to_bytes(), [], ["k1"], files))
print(json.dumps({"outcome": outcome.as_dict(),
                  "left": sorted(os.listdir(config.clamav_database_dir)),
                  "daily": config.clamav_database_dir.joinpath("daily.ndb").read_text()}))
"""


def test_signature_files_that_do_not_fit_fail_the_update_and_leave_the_old_ones(
        tmp_path, database):
    big = tmp_path / "big.ndb"
    big.write_bytes(b"".join(b"Portcullis.Test.Big%d:0:*:6e6577%08x\n" % (n, n)
                             for n in range(3000)))
    config = signature_agent_toml(tmp_path, database)

    result = run_on_small_disk(database, "64k", FULL_DISK, str(config), str(big),
                               OLD_SIGNATURE.decode())

    assert result["outcome"]["outcome"] == "failed"
    assert result["outcome"]["reason"].startswith(
        f"appliance cannot install the signature files in {database}: ")
    assert "No space left on device" in result["outcome"]["reason"]
    assert result["left"] == ["daily.ndb"] and result["daily"] == OLD_SIGNATURE.decode()
    assert os.listdir(tmp_path / "state") == []    # nothing left pending
