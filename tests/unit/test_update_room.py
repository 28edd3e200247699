"""A pushed bundle is refused before its bytes are read when writing it would leave the
file system it goes to (/var, where the store and archive live) with less than
min_free_bytes free: the agent's spool, and root's copy plus its extracted payload."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from portcullis.update import installer, receiver, transfer
from portcullis.update.agentconfig import AgentConfig

pytestmark = pytest.mark.updates

SIZE = 4 * 1024 * 1024
VENDOR = {"SSH_CLIENT": "207.219.44.10 40000 22"}


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def push(size: int = SIZE) -> io.BytesIO:
    return io.BytesIO(transfer.header(size) + b"x" * size)


def config(tmp_path: Path, keep_free: int) -> AgentConfig:
    return AgentConfig(spool_dir=tmp_path / "spool", state_dir=tmp_path / "state",
                       portcullis_config=tmp_path / "absent.toml",
                       trust_root=tmp_path / "absent-trust.json", min_free_bytes=keep_free)


def test_the_agent_refuses_a_bundle_that_would_eat_into_the_free_space_it_keeps(tmp_path):
    stdin, stdout = push(), io.BytesIO()
    # Everything free is to be kept: no bundle fits.
    keep = free_bytes(tmp_path)

    status = receiver.receive(config(tmp_path, keep), stdin, stdout, VENDOR)

    result = json.loads(stdout.getvalue())
    assert (status, result["outcome"]) == (1, "failed")
    assert "appliance cannot store the bundle" in result["reason"]
    assert "MiB kept free" in result["reason"]
    assert stdin.tell() == len(transfer.header(SIZE))     # not a byte of it was read
    assert [p.name for p in (tmp_path / "spool").iterdir()] == [".receiving"]


def test_the_installer_keeps_room_for_the_bundle_and_its_payload(tmp_path):
    stdin = push()
    # Room for the bundle, not for it and its payload as well.
    keep = free_bytes(tmp_path) - SIZE - SIZE // 2

    outcome = installer.install_stream(config(tmp_path, keep), stdin)

    assert outcome.outcome == "failed"
    assert "MiB kept free" in outcome.reason
    assert stdin.tell() == len(transfer.header(SIZE))
    assert list((tmp_path / "state" / "work").iterdir()) == []


def test_with_room_the_bundle_is_read_and_judged_on_its_merits(tmp_path):
    stdin = push()

    outcome = installer.install_stream(config(tmp_path, 0), stdin)

    assert stdin.tell() == len(stdin.getvalue())
    assert "kept free" not in outcome.reason       # (this one has no trust root to check)
