import asyncio
import contextlib
import gzip
import json
import os
import random
import stat
import threading
import time
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller

from portcullis import config as configuration
from portcullis.archive import Archive, ArchiveError
from portcullis.archive.release import release
from portcullis.checks.virus import virus_symbol
from portcullis.directory.domains import add_domain
from portcullis.policy import Decision, Symbol, Verdict
from portcullis.services import Services
from portcullis.store import StoreError, open_store
from tests.support.gateway import free_port

pytestmark = pytest.mark.gateway


@pytest.fixture
def archive(tmp_path):
    return Archive(open_store(tmp_path), tmp_path / "archive")


SOME_SYMBOLS = (Symbol("X", 1.0, "r"),)


def put(archive, message_id, *, received, subject="s", sender="a@x.org",
        rcpt: str | list[str] = "bob@example.com", verdict=Verdict.ACCEPT,
        symbols=SOME_SYMBOLS):
    body = f"Subject: {subject}\r\n\r\nbody\r\n".encode()
    path = archive.write_body(message_id, body)
    archive.index(message_id=message_id, received=received, direction="inbound",
                  client_ip="192.0.2.1", helo="h", mail_from=sender,
                  recipients=[rcpt] if isinstance(rcpt, str) else rcpt,
                  subject=subject, decision=Decision(verdict, 1.0, "", tuple(symbols)),
                  size=len(body), path=path)
    return body


def test_archived_messages_are_never_readable_by_other_users(archive):
    """A segment holds whole messages; under umask 022 (make run, a gateway started by
    hand) it was created readable by every local user."""
    umask = os.umask(0o022)
    try:
        put(archive, "20261129T000000-aaaa", received=time.time())
    finally:
        os.umask(umask)
    [segment] = (archive.root / "2026" / "11" / "29").iterdir()
    assert stat.S_IMODE(segment.stat().st_mode) == 0o640


def test_messages_are_stored_compressed_and_read_back(archive):
    body = put(archive, "20261129T000000-aaaa", received=time.time())
    second = put(archive, "20261129T000001-bbbb", received=time.time(), subject="two")
    message = archive.get("20261129T000000-aaaa")
    assert archive.read_body(message) == body
    assert archive.read_body(archive.get("20261129T000001-bbbb")) == second
    assert message.symbols == [Symbol("X", 1.0, "r")]
    # One segment file of whole gzip members: what zcat shows is the bodies in turn.
    segment, = (archive.root / "2026" / "11" / "29").iterdir()
    assert gzip.decompress(segment.read_bytes()) == body + second


def read(archive, message_id, path):
    """A body read back by where write_body put it (no index row needed)."""
    return archive.read_body(SimpleNamespace(id=message_id, path=path))


def test_a_new_day_a_full_segment_and_a_forked_process_each_start_a_new_file(
        archive, monkeypatch):
    monkeypatch.setattr("portcullis.archive.archive.SEGMENT_BYTES", 3000)
    paths = {f"20261129T0000{i:02d}-x": archive.write_body(f"20261129T0000{i:02d}-x",
                                                            os.urandom(1000))
             for i in range(5)}
    paths["20261130T000000-y"] = archive.write_body("20261130T000000-y", b"next day")
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:       # a gateway worker forked after the parent wrote: its own file
        os.write(writer, archive.write_body("20261130T000001-z", b"child").encode())
        os._exit(0)
    os.close(writer)
    assert os.waitpid(child, 0)[1] == 0
    paths["20261130T000001-z"] = os.read(reader, 1000).decode()
    paths["20261130T000002-w"] = archive.write_body("20261130T000002-w", b"parent again")
    files = {path.partition("#")[0] for path in paths.values()}
    # The 29th: three bodies fill the first segment, two go to a second; the 30th: the
    # parent's segment (before and after the fork) and the child's.
    assert len(files) == 4
    assert paths["20261130T000002-w"].partition("#")[0] == \
        paths["20261130T000000-y"].partition("#")[0]
    assert read(archive, "20261130T000001-z", paths["20261130T000001-z"]) == b"child"
    assert read(archive, "20261130T000002-w", paths["20261130T000002-w"]) == b"parent again"


def test_each_thread_appends_to_a_segment_of_its_own(archive):
    """Large bodies are written in worker threads while the loop writes small ones."""
    bodies = {f"20261129T000000-{t}{i:03d}": os.urandom(i * 37)
              for t in "abcd" for i in range(100)}
    paths: dict[str, str] = {}

    def write(thread):
        for message_id, body in bodies.items():
            if message_id[16] == thread:
                paths[message_id] = archive.write_body(message_id, body)

    threads = [threading.Thread(target=write, args=(t,)) for t in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(read(archive, i, paths[i]) == body for i, body in bodies.items())
    assert len({path.partition("#")[0] for path in paths.values()}) == 4
    archive.close()
    assert read(archive, "20261129T000000-a001", paths["20261129T000000-a001"]) == \
        bodies["20261129T000000-a001"]
    assert archive.write_body("20261129T000001-e", b"after close").startswith(
        "2026/11/29/segment-20261129T000001-e.gz#0+")


def test_bodies_stored_one_per_file_are_still_read_and_purged(archive):
    """Archives written before segments keep working after an update."""
    old = time.time() - 8 * 86400
    path = "20261120/legacy.eml.gz"
    (archive.root / "20261120").mkdir(parents=True)
    (archive.root / path).write_bytes(gzip.compress(b"Subject: old\r\n\r\nx\r\n"))
    archive.index(message_id="20261120T000000-legacy", received=old, direction="inbound",
                  client_ip="192.0.2.1", helo="h", mail_from="a@x.org",
                  recipients=["bob@example.com"], subject="old",
                  decision=Decision(Verdict.ACCEPT, 0.0, "", ()), size=20, path=path)
    assert archive.read_body(archive.get("20261120T000000-legacy")).startswith(b"Subject: old")
    assert archive.purge(7) == 1
    assert not (archive.root / path).exists()


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


def shared_archive(archive):
    """Messages to one, two or three recipients over five domains: some to two of one
    domain, some arriving in the same second (ties are ordered by id)."""
    rng = random.Random(5)
    domains = ["example.com", "other.org", "rare.example", "d1.example", "d2.example"]
    weights = [40, 40, 2, 10, 8]
    messages = {}
    for n in range(300):
        rcpts = list(dict.fromkeys(
            f"{rng.choice(['bob', 'eve', 'ann'])}@{rng.choices(domains, weights)[0]}"
            for _ in range(rng.choice([1, 1, 2, 3]))))
        received = 1_000_000.0 + n // 3
        message_id = f"m{rng.randrange(10**6):06d}-{n}"
        put(archive, message_id, received=received, rcpt=rcpts,
            sender=f"s{n % 7}@x.org", verdict=rng.choice(list(Verdict)))
        messages[message_id] = (received, rcpts)
    return domains, messages


def expected(messages, domains, recipient="", since=None, offset=0, limit=100):
    """What a domain administrator's search finds, worked out from the messages."""
    found = [(received, message_id) for message_id, (received, rcpts) in messages.items()
             if any(r.partition("@")[2] in domains and recipient in r for r in rcpts)
             and (since is None or received >= since)]
    return [message_id for _, message_id in sorted(found, reverse=True)][offset:offset + limit]


@pytest.mark.parametrize("arms", [100, 2])
def test_a_domain_search_finds_what_the_whole_archive_holds_for_those_domains_only(
        archive, monkeypatch, arms):
    # arms=2: the domains of an administrator of many go to the store in several
    # queries, whose pages are merged here.
    monkeypatch.setattr("portcullis.archive.archive.MAX_ARMS", arms)
    domains, messages = shared_archive(archive)
    for mine in (["rare.example"], ["example.com"], ["rare.example", "d2.example"],
                 ["other.org", "rare.example", "d1.example", "d2.example", "none.example"],
                 domains):
        for query in ({}, {"offset": 7, "limit": 30}, {"offset": 290},
                      {"recipient": "eve@"}, {"recipient": "ann", "since": 1_000_050.0},
                      {"limit": 1}):
            found = archive.search(domains=mine, **query)
            assert [m.id for m in found] == expected(messages, mine, **query), (mine, query)
            # Each message whole: every recipient, the arrival time of its own row.
            for m in found:
                assert (m.received, m.recipients) == messages[m.id], m.id
    assert archive.search(domains=[]) == []
    assert [m.id for m in archive.search(domains=["example.com"], verdict="reject",
                                         sender="S3@")] == [
        m.id for m in archive.search(verdict="reject", sender="s3@", limit=1000)
        if any(r.endswith("@example.com") for r in m.recipients)][:100]


def test_a_domain_search_reads_the_domains_recipient_rows_by_index(archive, monkeypatch):
    # A domain that gets little mail: going down the whole archive newest first read
    # every message for its administrator's archive, dashboard and log.
    shared_archive(archive)
    statements = []
    for name in ("query", "query_values"):
        run = getattr(archive.store, name)
        monkeypatch.setattr(archive.store, name, lambda sql, params=(), run=run: (
            statements.append((sql, params)), run(sql, params))[1])
    for query in ({"domains": ["rare.example"]},
                  {"domains": ["rare.example", "d1.example"], "sender": "s1", "since": 1.0,
                   "until": 2e6, "recipient": "@", "verdict": "accept"}):
        statements.clear()
        assert archive.search(**query), query
        plan = [row["detail"] for sql, params in list(statements)
                for row in archive.store.query(f"EXPLAIN QUERY PLAN {sql}", params)]
        # No message or recipient row read but those of the domains, newest first from
        # the index: no scan, no sort of a domain's rows.
        assert not [step for step in plan if step.startswith("SCAN")
                    or "TEMP B-TREE" in step], plan
        assert sum("INDEX archive_rcpt_domain_received (domain=?" in step
                   for step in plan) == len(query["domains"]), plan


def test_the_arrival_time_of_messages_archived_before_the_update_is_filled_in(
        tmp_path, monkeypatch):
    from portcullis.store import migrations
    from portcullis.store.migrations import core

    monkeypatch.setitem(migrations.COMPONENTS, "core", core.STEPS[:3])
    old = Archive(open_store(tmp_path), tmp_path / "archive")
    for n, message_id in enumerate(("older", "newer")):
        old.store.execute(
            "INSERT INTO archive (id, received, direction, client_ip, helo, mail_from, subject,"
            " verdict, reason, score, symbols, size, path)"
            " VALUES (?, ?, 'inbound', '192.0.2.1', 'h', 'a@x.org', 's', 'reject', '', 9,"
            " '[]', 1, 'p')", (message_id, 1000.0 + n))
        old.store.execute("INSERT INTO archive_rcpt (archive_id, address, domain)"
                          " VALUES (?, 'bob@example.com', 'example.com')", (message_id,))
    monkeypatch.undo()
    archive = Archive(open_store(tmp_path), tmp_path / "archive")
    assert [m.id for m in archive.search(domains=["example.com"])] == ["newer", "older"]
    assert [m.id for m in archive.search(domains=["example.com"], since=1000.5)] == ["newer"]


def test_text_filters_are_case_blind_in_every_script(archive):
    # SQLite's LIKE folds ASCII letters only: "überweisung" missed "Überweisung".
    put(archive, "m-de", received=time.time(), subject="Überweisung fällig",
        sender="Jürgen@bücher.example", rcpt="ÄRGER@example.com")
    put(archive, "m-ru", received=time.time(), subject="СЧЁТ на оплату")
    for found, query in [("m-de", {"subject": "überweisung"}), ("m-de", {"subject": "FÄLLIG"}),
                         ("m-de", {"sender": "JÜRGEN@BÜCHER"}), ("m-de", {"recipient": "ärger"}),
                         ("m-ru", {"subject": "счёт"})]:
        assert [m.id for m in archive.search(**query)] == [found], query
    assert archive.search(subject="Überweisung_") == []            # wildcards still escaped


def test_cli_search_pages_on_and_refuses_what_it_would_cut(tmp_path, capsys):
    from portcullis.cli.main import main

    cfg = tmp_path / "portcullis.toml"
    cfg.write_text(f'[smtp]\nlisten = "127.0.0.1:1"\n[web]\nlisten = "127.0.0.1:1"\n'
                   f'[store]\ndir = "{tmp_path}"\n')
    archive = Archive(open_store(tmp_path), tmp_path / "archive")
    for n in range(3):
        put(archive, f"m{n}", received=1000.0 + n)
    search = ["archive", "search", "--config", str(cfg), "--json"]
    assert main([*search, "--limit", "2", "--offset", "2"]) == 0
    assert [m["id"] for m in json.loads(capsys.readouterr().out)] == ["m0"]
    assert main([*search, "--offset", "9" * 30]) == 0
    assert json.loads(capsys.readouterr().out) == []
    with pytest.raises(SystemExit):         # 1,000 at most: it was cut without a word
        main([*search, "--limit", "5000"])
    assert "from 1 to 1000" in capsys.readouterr().err
    for args in ([*search, "--subject", "caf\udce9"], ["archive", "show", "m\udcff"]):
        with pytest.raises(SystemExit):     # bytes that are not UTF-8: a traceback before
            main(args)
        assert "not UTF-8 text" in capsys.readouterr().err
    for since in ("9" * 400 + "d", "0001-01-01T00:00"):
        with pytest.raises(SystemExit):     # an OverflowError traceback before
            main([*search, "--since", since])
        assert "use ISO time" in capsys.readouterr().err


def test_purge_removes_old_messages_and_their_days(archive):
    now = time.time()
    old_day = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now - 8 * 86400))
    put(archive, f"{old_day}-old", received=now - 8 * 86400)
    put(archive, "20261129T000000-new", received=now)
    old_file = archive.root / archive.get(f"{old_day}-old").path.partition("#")[0]
    assert archive.purge(7, now=now) == 1
    assert archive.get(f"{old_day}-old") is None and not old_file.parent.exists()
    assert archive.get("20261129T000000-new") is not None


def test_purge_frees_expired_days_even_when_the_store_cannot_write(archive, monkeypatch):
    """On a full disk SQLite cannot write the index's deletions ("database or disk is
    full"): the purge then freed nothing, so the disk stayed full, every message was
    deferred for want of an archive, and each hourly purge failed the same way.  The
    bodies of days past the retention are what makes room; they go all the same."""
    now = time.time()
    old_day = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now - 9 * 86400))
    put(archive, f"{old_day}-old", received=now - 9 * 86400)
    old_file = archive.root / archive.get(f"{old_day}-old").path.partition("#")[0]

    def disk_full(sql, rows):
        raise StoreError("database or disk is full")

    monkeypatch.setattr(archive.store, "executemany", disk_full)
    with pytest.raises(StoreError):
        archive.purge(7, now=now)
    assert not old_file.parent.exists()
    monkeypatch.undo()
    assert archive.purge(7, now=now) == 1


def test_an_unwritable_archive_raises_archive_error(archive):
    archive.root.mkdir(parents=True, exist_ok=True)
    (archive.root / "2026").write_text("a file where a directory should be")
    with pytest.raises(ArchiveError):
        archive.write_body("20261129T000000-x", b"x")


def test_a_body_is_written_whole_or_not_at_all(archive, monkeypatch):
    """A failed write (disk full) takes its partial bytes back and leaves what the
    segment held readable; a segment that got nothing is not left behind."""
    real_write = os.write

    def full_disk(fd, data):
        real_write(fd, bytes(data[:1000]))        # part of it, then the disk is full
        raise OSError(28, "No space left on device")

    body = b"Subject: s\r\n\r\n" + os.urandom(50_000)
    first = archive.write_body("20261129T000000-aa", body)
    segment = archive.root / first.partition("#")[0]
    size = segment.stat().st_size
    with monkeypatch.context() as patched:
        patched.setattr("portcullis.archive.archive.os.write", full_disk)
        with pytest.raises(ArchiveError, match="No space left"):
            archive.write_body("20261129T000000-bb", body)
        assert segment.stat().st_size == size
        with pytest.raises(ArchiveError, match="No space left"):
            archive.write_body("20261129T000000-cc", body)   # a new segment: removed again
    assert sorted(p.name for p in segment.parent.iterdir()) == [segment.name]
    assert read(archive, "20261129T000000-aa", first) == body
    put(archive, "20261129T000000-dd", received=time.time())
    assert archive.read_body(archive.get("20261129T000000-dd")).startswith(b"Subject: s")


def test_a_damaged_segment_is_an_archive_error(archive):
    path = archive.write_body("20261129T000000-aa", b"Subject: s\r\n\r\nbody")
    name, _, span = path.partition("#")
    start, _, length = span.partition("+")
    with pytest.raises(ArchiveError, match="ends early"):
        read(archive, "20261129T000000-aa", f"{name}#{start}+{int(length) + 1}")
    (archive.root / name).write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(ArchiveError, match="unreadable"):
        read(archive, "20261129T000000-aa", path)


def test_a_body_whose_day_was_removed_is_a_plain_archive_error(archive):
    put(archive, "20261129T000000-gone", received=time.time())
    archive.close()
    for segment in (archive.root / "2026" / "11" / "29").iterdir():
        segment.unlink()            # the retention swept its day, or an administrator did
    with pytest.raises(ArchiveError, match="no longer in the archive") as removed:
        archive.read_body(archive.get("20261129T000000-gone"))
    assert str(archive.root) not in str(removed.value)


def test_an_unreadable_body_is_said_so_without_where_the_archive_lives(archive):
    # Shown to administrators of every domain: an OS error's text names the file.
    put(archive, "20261129T000000-dir", received=time.time())
    archive.close()
    segment, = (archive.root / "2026" / "11" / "29").iterdir()
    segment.unlink()
    segment.mkdir()                 # whatever it is now, it is not the segment
    with pytest.raises(ArchiveError, match=r"unreadable: Is a directory$") as unreadable:
        archive.read_body(archive.get("20261129T000000-dir"))
    assert str(archive.root) not in str(unreadable.value)


def test_purge_sweeps_what_a_crash_left_in_expired_days_only(archive):
    """Bodies written but never indexed (the gateway died between the two) go with their
    day once it is past the retention; the days still kept are left alone."""
    now = time.time()
    old_day = time.strftime("%Y%m%d", time.gmtime(now - 9 * 86400))
    put(archive, f"{old_day}T120000-indexed", received=now - 9 * 86400)
    orphan = archive.root / archive.write_body(f"{old_day}T120001-orphan", b"x").partition("#")[0]
    kept = archive.root / archive.write_body(
        time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + "-orphan", b"y").partition("#")[0]
    stranger = archive.root / "2026" / "13" / "45"     # not a day: never swept
    stranger.mkdir(parents=True)
    (stranger / "keep").write_bytes(b"z")
    assert archive.purge(7, now=now) == 1
    assert not orphan.parent.exists()
    assert kept.exists() and (stranger / "keep").exists()


def test_purge_keeps_the_empty_directory_of_a_day_not_over(archive):
    """A gateway may be about to put the day's first segment there; an emptied past day
    within the retention goes."""
    now = time.time()
    today, yesterday = (archive.root / time.strftime("%Y/%m/%d", time.gmtime(t))
                        for t in (now, now - 86400))
    today.mkdir(parents=True)
    yesterday.mkdir(parents=True)
    assert archive.purge(7, now=now) == 0
    assert today.is_dir() and not yesterday.exists()


def test_a_day_directory_swept_while_its_first_segment_opens_is_made_again(
        archive, monkeypatch):
    real_open = os.open
    swept = []

    def open_racing_a_purge(path, flags, mode=0o777):
        parent = os.path.dirname(path)
        if os.path.isdir(parent) and not swept:   # another process's purge took it
            os.rmdir(parent)
            swept.append(parent)
        return real_open(path, flags, mode)

    monkeypatch.setattr("portcullis.archive.archive.os.open", open_racing_a_purge)
    path = archive.write_body("20261129T000000-raced", b"first of the day")
    assert swept and read(archive, "20261129T000000-raced", path) == b"first of the day"


def test_mail_for_an_international_domain_is_its_administrators_whichever_way_written(archive):
    put(archive, "m-idn", received=time.time(), rcpt="anna@bücher.example")
    found = archive.search(domains=["xn--bcher-kva.example"])
    assert [m.id for m in found] == ["m-idn"]
    assert archive.search(domains=["example.com"]) == []


def test_a_release_claims_each_recipient_once(archive):
    put(archive, "m1", received=time.time(), verdict=Verdict.REJECT)
    claims: list[list[str]] = []
    threads = [threading.Thread(target=lambda: claims.append(
        archive.claim_release("m1", ["bob@example.com"]))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims) == [[]] * 7 + [["bob@example.com"]]     # one of two clicks
    assert list(archive.get("m1").released_to) == ["bob@example.com"]
    archive.set_released("m1", ["bob@example.com"], released=False)   # delivery failed
    assert not archive.get("m1").released_to
    assert archive.claim_release("m1", ["bob@example.com"]) == ["bob@example.com"]


def test_messages_an_older_release_released_count_as_released_to_every_recipient(
        tmp_path, monkeypatch):
    from portcullis.store import migrations
    from portcullis.store.migrations import core

    monkeypatch.setitem(migrations.COMPONENTS, "core", core.STEPS[:2])
    old = Archive(open_store(tmp_path), tmp_path / "archive")
    for message_id in ("released", "not-released"):
        old.store.execute(
            "INSERT INTO archive (id, received, direction, client_ip, helo, mail_from, subject,"
            " verdict, reason, score, symbols, size, path, released)"
            " VALUES (?, 1, 'inbound', '192.0.2.1', 'h', 'a@x.org', 's', 'reject', '', 9,"
            " '[]', 1, 'p', ?)", (message_id, 5.0 if message_id == "released" else None))
        old.store.executemany("INSERT INTO archive_rcpt VALUES (?, ?, 'example.com')",
                              [(message_id, "bob@example.com"), (message_id, "eve@example.com")])
    monkeypatch.undo()
    archive = Archive(open_store(tmp_path), tmp_path / "archive")
    assert archive.get("released").released_to == {"bob@example.com": 5.0,
                                                   "eve@example.com": 5.0}
    assert not archive.get("not-released").released_to



def test_wanted_messages_the_internal_host_refused_under_an_older_release_read_as_refused(
        tmp_path, monkeypatch):
    from portcullis.store import migrations
    from portcullis.store.migrations import core

    monkeypatch.setitem(migrations.COMPONENTS, "core", core.STEPS[:5])
    old = Archive(open_store(tmp_path), tmp_path / "archive")
    for message_id, verdict, delivery in (
            ("deferred", "accept", "451 4.4.1 internal host not reachable"),
            ("refused", "tag", "552 5.2.2 mailbox full"),
            ("taken", "accept", "250 2.0.0 Ok: queued"),
            ("released", "accept", "released by admin: delivered to bob@example.com"),
            ("spam", "reject", "550 5.7.1 Spam score 20.0")):
        old.store.execute(
            "INSERT INTO archive (id, received, direction, client_ip, helo, mail_from, subject,"
            " verdict, reason, score, symbols, size, path, delivery)"
            " VALUES (?, 1, 'inbound', '192.0.2.1', 'h', 'a@x.org', 's', ?, 'Spam score 20.0',"
            " 1, '[]', 1, 'p', ?)", (message_id, verdict, delivery))
    monkeypatch.undo()
    archive = Archive(open_store(tmp_path), tmp_path / "archive")
    assert [(archive.get(m).verdict, archive.get(m).reason) for m in (
        "deferred", "refused", "taken", "released", "spam")] == [
        ("tempfail", "by internal host: 4.4.1 internal host not reachable"),
        ("reject", "by internal host: 5.2.2 mailbox full"),
        ("accept", "Spam score 20.0"), ("accept", "Spam score 20.0"),
        ("reject", "Spam score 20.0")]


class Sink:
    """The domains' internal mail host, on loopback: keeps who got each message."""

    def __init__(self) -> None:
        self.deliveries: list[list[str]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refused."):          # a user the host does not know
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.deliveries.append(list(envelope.rcpt_tos))
        return "250 2.0.0 kept"


@contextlib.contextmanager
def running_sink():
    """A Sink listening on loopback: (sink, port)."""
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()


@contextlib.contextmanager
def mail_services(tmp_path, port):
    """Services whose two domains' internal mail host is on loopback at ``port``."""
    services = Services.open(configuration.parse({
        "smtp": {"listen": "127.0.0.1:1", "hostname": "gw.test"},
        "web": {"listen": "127.0.0.1:1"}, "store": {"dir": str(tmp_path)},
        "log": {"file": str(tmp_path / "portcullis.log")},
        "delivery": {"connect_timeout": 5, "command_timeout": 5, "data_timeout": 5}}))
    try:
        for domain in ("example.com", "other.org"):       # one ISP mail host for both
            add_domain(services.store, domain, f"127.0.0.1:{port}")
        yield services
    finally:
        services.close()


@pytest.fixture
def mailhost():
    with running_sink() as found:
        yield found


@pytest.fixture
def services(tmp_path, mailhost):
    with mail_services(tmp_path, mailhost[1]) as services:
        yield services


def test_a_release_again_does_not_make_a_message_delivered_on_arrival_releasable(
        services, mailhost):
    sink, _ = mailhost
    put(services.archive, "m-shared", received=time.time(), rcpt="alice@example.com")
    services.store.execute("INSERT INTO archive_rcpt (archive_id, address, domain)"
                           " VALUES ('m-shared', 'carol@other.org', 'other.org')")
    services.archive.set_delivery("m-shared", "250 2.0.0 Ok: queued as m-shared")
    # example.com's administrator sends alice another copy on purpose: carol still has
    # hers from the arrival, and no release of other.org's reached her.
    result = asyncio.run(release(services, "m-shared", "dora",
                                 allowed_domains=["example.com"], again=True))
    assert result.delivered == ["alice@example.com"]
    with pytest.raises(ArchiveError, match="was delivered when it arrived"):
        asyncio.run(release(services, "m-shared", "root"))
    assert sink.deliveries == [["alice@example.com"]]
    message = services.archive.get("m-shared")
    assert list(message.released_to) == ["alice@example.com"] and message.released
    assert message.delivery == "250 2.0.0 Ok: queued as m-shared"


def test_only_the_super_administrator_releases_a_message_rejected_as_a_virus(
        services, mailhost):
    sink, _ = mailhost
    virus = virus_symbol("Eicar-Signature")
    put(services.archive, "m-virus", received=time.time(), rcpt="alice@example.com",
        verdict=Verdict.REJECT, symbols=[virus])
    for again in (False, True):
        with pytest.raises(ArchiveError, match="rejected as a virus"):
            asyncio.run(release(services, "m-virus", "dora",
                                allowed_domains=["example.com"], again=again))
    assert sink.deliveries == [] and not services.archive.get("m-virus").released_to
    assert asyncio.run(release(services, "m-virus", "root")).delivered == \
        ["alice@example.com"]


def test_a_message_still_being_delivered_on_arrival_is_not_released(services, mailhost):
    sink, _ = mailhost
    # Accepted; the internal host has not answered the end of its data yet.
    put(services.archive, "m-slow", received=time.time(), rcpt="alice@example.com")
    with pytest.raises(ArchiveError, match="is being delivered now"):
        asyncio.run(release(services, "m-slow", "root"))
    assert sink.deliveries == [] and not services.archive.get("m-slow").released_to


def test_a_release_interrupted_at_a_second_host_keeps_what_it_delivered(
        services, mailhost, monkeypatch):
    from portcullis.archive import release as releasing
    from portcullis.directory.domains import update_domain

    sink, port = mailhost
    update_domain(services.store, "other.org", mail_host=f"127.0.0.1:{free_port()}")
    put(services.archive, "m-two-hosts", received=time.time(), rcpt="alice@example.com",
        verdict=Verdict.REJECT)
    services.store.execute("INSERT INTO archive_rcpt (archive_id, address, domain)"
                           " VALUES ('m-two-hosts', 'carol@other.org', 'other.org')")
    deliver = releasing.deliver

    async def slow_second_host(hop, **kwargs):
        if hop.port != port:
            raise KeyboardInterrupt          # the administrator gave up waiting: Ctrl-C
        return await deliver(hop, **kwargs)

    monkeypatch.setattr(releasing, "deliver", slow_second_host)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(release(services, "m-two-hosts", "cli"))
    assert sink.deliveries == [["alice@example.com"]]
    # alice has it: the next release is carol's only.
    assert list(services.archive.get("m-two-hosts").released_to) == ["alice@example.com"]
    monkeypatch.setattr(releasing, "deliver", deliver)
    update_domain(services.store, "other.org", mail_host=f"127.0.0.1:{port}")
    assert asyncio.run(release(services, "m-two-hosts", "cli")).delivered == ["carol@other.org"]
    assert sink.deliveries == [["alice@example.com"], ["carol@other.org"]]


def test_a_message_purged_while_its_release_starts_is_said_to_be_purged(
        services, mailhost, monkeypatch):
    sink, _ = mailhost
    put(services.archive, "m-old", received=time.time() - 8 * 86400, verdict=Verdict.REJECT)
    get = services.archive.get

    def purged_after_reading(message_id):        # the hourly purge runs in between
        message = get(message_id)
        services.archive.purge(7)
        return message

    monkeypatch.setattr(services.archive, "get", purged_after_reading)
    with pytest.raises(ArchiveError, match="purged"):      # not 'already released'
        asyncio.run(release(services, "m-old", "root"))
    assert sink.deliveries == []


@pytest.mark.parametrize("reply", ["", "550 5.7.1 Spam score 13.5", "451 " + "x" * 400])
def test_a_refusal_archived_with_its_reply_reads_as_one_whose_outcome_came_after(archive,
                                                                                reply):
    # A refused message's reply goes in with it (index), a delivered one's outcome is
    # written after (set_delivery): the archive must hold the same either way.
    decision = Decision(Verdict.REJECT, 13.5, "Spam score 13.5", (Symbol("X", 13.5, "r"),))
    for message_id, delivery in (("20261201T000000-with", reply), ("20261201T000000-then", "")):
        archive.index(message_id=message_id, received=1764547200.0, direction="inbound",
                      client_ip="192.0.2.1", helo="h", mail_from="a@x.org",
                      recipients=["bob@example.com"], subject="s", decision=decision,
                      size=10, path="2026/12/01/segment-x.gz#0+10", delivery=delivery)
    archive.set_delivery("20261201T000000-then", reply)
    together, after = archive.get("20261201T000000-with"), archive.get("20261201T000000-then")
    assert together.delivery == after.delivery
    assert {**together.to_json(), "id": ""} == {**after.to_json(), "id": ""}
