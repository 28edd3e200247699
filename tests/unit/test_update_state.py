"""The anti-rollback state file and the atomic writes every update target uses."""

from __future__ import annotations

import os
import tempfile

import pytest

from portcullis.update.state import UpdateState, write_atomically

pytestmark = pytest.mark.updates


def test_write_atomically_does_not_follow_a_link_at_a_temporary_name(tmp_path, monkeypatch):
    victim = tmp_path / "shadow"
    victim.write_bytes(b"untouched")
    target = tmp_path / "state.json"
    # the name the old code always used, and a name the temporary file is made to try
    # first (tempfile's private name source: the only way to have it "guessed")
    old_name = tmp_path / f".state.json.{os.getpid()}.tmp"
    guessed = tmp_path / ".state.json.guessed.tmp"
    for link in (old_name, guessed):
        link.symlink_to(victim)
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: iter(["guessed", "fresh"]))

    write_atomically(target, b"new", 0o640)

    assert victim.read_bytes() == b"untouched"
    assert old_name.is_symlink() and guessed.is_symlink()
    assert target.read_bytes() == b"new" and not target.is_symlink()
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".state.json.guessed.tmp", old_name.name, "shadow", "state.json"])


def test_write_atomically_leaves_the_old_file_and_no_temporary_one_on_failure(
        tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        write_atomically(target, b"new", 0o644)

    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_recorded_versions_survive_a_reread(tmp_path):
    state = UpdateState(tmp_path)
    state.record("app", "1.2.0")
    state.record("config", "3")
    assert UpdateState(tmp_path).versions() == {"app": "1.2.0", "config": "3"}
