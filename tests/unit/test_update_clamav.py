"""Signature files put into clamav's own directory by root: links planted there by the
clamav account (whose daemons read hostile files) must not redirect root's writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portcullis.update.clamav import ClamavDatabase
from tests.support.dirs import daemon_dir

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

    installed = ClamavDatabase(database).install({"daily.ndb": new, "main.ndb": new})
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
                                          "bytecode.cbc": tmp_path / "absent.cbc"})
    assert sorted(os.listdir(database)) == ["daily.ndb", "main.ndb"]
    assert (database / "daily.ndb").read_bytes() == b"old\n"
    assert os.readlink(database / "main.ndb") == "main.cvd"

    installed = ClamavDatabase(database).install({"daily.ndb": new, "extra.ndb": new})
    installed.rollback()
    assert sorted(os.listdir(database)) == ["daily.ndb", "main.ndb"]
    assert (database / "daily.ndb").read_bytes() == b"old\n"
