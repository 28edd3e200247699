import time

import pytest

from portcullis.archive import Archive, ArchiveError
from portcullis.policy import Decision, Symbol, Verdict
from portcullis.store import open_store

pytestmark = pytest.mark.gateway


@pytest.fixture
def archive(tmp_path):
    return Archive(open_store(tmp_path), tmp_path / "archive")


def put(archive, message_id, *, received, subject="s", sender="a@x.org",
        rcpt="bob@example.com", verdict=Verdict.ACCEPT):
    body = f"Subject: {subject}\r\n\r\nbody\r\n".encode()
    path = archive.write_body(message_id, body)
    archive.index(message_id=message_id, received=received, direction="inbound",
                  client_ip="192.0.2.1", helo="h", mail_from=sender, recipients=[rcpt],
                  subject=subject, decision=Decision(verdict, 1.0, "", (Symbol("X", 1.0, "r"),)),
                  size=len(body), path=path)
    return body


def test_messages_are_stored_compressed_and_read_back(archive):
    body = put(archive, "20261129T000000-aaaa", received=time.time())
    message = archive.get("20261129T000000-aaaa")
    assert archive.read_body(message) == body
    assert message.symbols == [Symbol("X", 1.0, "r")]
    assert (archive.root / message.path).read_bytes()[:2] == b"\x1f\x8b"


def test_search_filters_and_domain_isolation(archive):
    now = time.time()
    put(archive, "20261129T000001-a", received=now - 10, subject="Invoice 100%",
        rcpt="bob@example.com")
    put(archive, "20261129T000002-b", received=now - 5, subject="hello", sender="x@spam.biz",
        rcpt="eve@example.net", verdict=Verdict.REJECT)
    assert [m.id for m in archive.search()] == ["20261129T000002-b", "20261129T000001-a"]
    assert [m.id for m in archive.search(subject="100%")] == ["20261129T000001-a"]
    assert [m.id for m in archive.search(subject="_")] == []       # LIKE wildcards escaped
    assert [m.id for m in archive.search(verdict="reject")] == ["20261129T000002-b"]
    assert [m.id for m in archive.search(sender="SPAM.BIZ")] == ["20261129T000002-b"]
    assert [m.id for m in archive.search(domains=["example.com"])] == ["20261129T000001-a"]
    assert archive.search(domains=[]) == []
    assert [m.id for m in archive.search(since=now - 7)] == ["20261129T000002-b"]


def test_purge_removes_old_messages_and_their_files(archive):
    old = time.time() - 8 * 86400
    put(archive, "20261120T000000-old", received=old)
    put(archive, "20261129T000000-new", received=time.time())
    old_path = archive.root / archive.get("20261120T000000-old").path
    assert archive.purge(7) == 1
    assert archive.get("20261120T000000-old") is None and not old_path.exists()
    assert archive.get("20261129T000000-new") is not None


def test_an_unwritable_archive_raises_archive_error(archive):
    archive.root.mkdir(parents=True, exist_ok=True)
    (archive.root / "2026").write_text("a file where a directory should be")
    with pytest.raises(ArchiveError):
        archive.write_body("20261129T000000-x", b"x")


def test_a_body_is_written_whole_or_not_at_all(archive, monkeypatch):
    """A failed write (disk full) leaves no partial file behind, and a message id is never
    written twice over an existing body."""
    import os as real_os

    def full_disk(fd, data):
        raise OSError(28, "No space left on device")

    body = b"Subject: s\r\n\r\n" + real_os.urandom(50_000)
    path = archive.write_body("20261129T000000-aa", body)
    with monkeypatch.context() as patched:
        patched.setattr("portcullis.archive.archive.os.write", full_disk)
        with pytest.raises(ArchiveError, match="No space left"):
            archive.write_body("20261129T000000-bb", body)
    assert sorted(p.name for p in (archive.root / path).parent.iterdir()) == \
        ["20261129T000000-aa.eml.gz"]
    with pytest.raises(ArchiveError):
        archive.write_body("20261129T000000-aa", b"other")
    put(archive, "20261129T000000-cc", received=time.time())
    assert archive.read_body(archive.get("20261129T000000-cc")).startswith(b"Subject: s")


def test_purge_sweeps_what_a_crash_left_in_expired_days_only(archive):
    """Bodies written but never indexed (the gateway died between the two) go with their
    day once it is past the retention; the days still kept are left alone."""
    now = time.time()
    old_day = time.strftime("%Y%m%d", time.gmtime(now - 9 * 86400))
    put(archive, f"{old_day}T120000-indexed", received=now - 9 * 86400)
    orphan = archive.root / archive.write_body(f"{old_day}T120001-orphan", b"x")
    kept = archive.root / archive.write_body(
        time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + "-orphan", b"y")
    stranger = archive.root / "2026" / "13" / "45"     # not a day: never swept
    stranger.mkdir(parents=True)
    (stranger / "keep").write_bytes(b"z")
    assert archive.purge(7, now=now) == 1
    assert not orphan.parent.exists()
    assert kept.exists() and (stranger / "keep").exists()
