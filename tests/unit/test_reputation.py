"""The reputation engine's rules: peer bonuses and protection, one-way credits, MTA
records, the Top lists' thresholds, and bounded growth."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import Counter

import pytest

from portcullis.bayes.evaluate import temporary_config
from portcullis.checks.base import Context
from portcullis.checks.peers import Relationships
from portcullis.config import HostPort
from portcullis.directory.domains import Domain
from portcullis.directory.snapshot import load_snapshot
from portcullis.events import UNFILTERED
from portcullis.observers import ConnectionClosed, MessageEvent
from portcullis.policy import Flag, Symbol, Thresholds, Verdict, decide
from portcullis.reputation import mta, oneway, peers
from portcullis.reputation.networks import network_of
from portcullis.reputation.observer import ReputationLearner
from portcullis.services import Services
from portcullis.smtp.recipients import Direction, Route
from portcullis.store import SQLiteStore, open_store

pytestmark = pytest.mark.reputation
T = Thresholds(5.0, 12.0)
INBOUND = Route(Direction.INBOUND, HostPort("192.0.2.25", 25),
                Domain("example.com", HostPort("192.0.2.25", 25)))
DAY = 86400.0


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path)


def sent(store, internal: str, external: str, messages: int = 1, when: float = 0) -> None:
    for _ in range(messages):
        peers.record_outbound(store, internal, external, when or time.time())


def test_a_stranger_is_no_peer(store):
    assert peers.symbols(peers.lookup(store, "alice@example.com", "x@remote.test"), 3) == []


def test_one_reply_gives_a_bonus_that_lifts_a_tag(store):
    sent(store, "alice@example.com", "friend@remote.test")
    [symbol] = peers.symbols(peers.lookup(store, "Alice@example.com", "friend@remote.test"), 3)
    assert symbol.name == "PEER" and symbol.flag is None
    assert decide([Symbol("BAYES_50", 7.0), symbol], T).verdict is Verdict.ACCEPT


def test_bonus_grows_with_exchanges_and_protection_overrides_a_dnsbl_reject(store):
    sent(store, "alice@example.com", "friend@remote.test")
    first = peers.symbols(peers.lookup(store, "alice@example.com", "friend@remote.test"), 3)[0]
    for _ in range(2):
        assert peers.record_inbound(store, "alice@example.com", "friend@remote.test", time.time())
    peer = peers.lookup(store, "alice@example.com", "friend@remote.test")
    assert peer.exchanges == 3
    [later] = peers.symbols(peer, 3)
    assert later.score < first.score and later.flag is Flag.PROTECT
    dnsbl = Symbol("RBL", 0.0, "RBL Block: zen.spamhaus.org 10.1.2.3", Flag.REJECT)
    assert decide([dnsbl, later, Symbol("BAYES_999", 12.5)], T).verdict is Verdict.ACCEPT
    # However bad the content looks, a protected peer's mail is at worst tagged.
    assert decide([dnsbl, later, Symbol("SPAMMY", 40.0)], T).verdict is Verdict.TAG
    virus = Symbol("VIRUS", 0.0, "Virus: Worm.X", Flag.MALWARE)
    assert decide([virus, later], T).verdict is Verdict.REJECT


def test_inbound_mail_counts_only_for_an_existing_relationship(store):
    assert not peers.record_inbound(store, "alice@example.com", "x@remote.test", time.time())
    assert store.scalar("SELECT count(*) FROM peer_inbound") == 0


def test_correspondents_at_the_same_domain_get_a_small_unprotected_bonus(store):
    sent(store, "alice@example.com", "friend@remote.test")
    [symbol] = peers.symbols(peers.lookup(store, "alice@example.com", "boss@remote.test"), 3)
    assert symbol.name == "PEER_DOMAIN" and symbol.flag is None and -3 < symbol.score < 0
    assert peers.symbols(peers.lookup(store, "bob@example.com", "boss@remote.test"), 3) == []


def test_an_international_domain_is_one_domain_however_it_is_written(store):
    # Recipients are filed under domain_of's form, as senders are looked up.
    sent(store, "alice@example.com", "Freund@Bücher.example")
    for stranger in ("chef@bücher.example", "chef@xn--bcher-kva.example"):
        assert peers.lookup(store, "alice@example.com", stranger).domain_partners == 1
    sent(store, "alice@example.com", "postmaster")    # no domain: no domain partner
    assert peers.lookup(store, "alice@example.com", "x@postmaster").domain_partners == 0


def assert_one_peer(store, user: str, user_again: str, spellings: tuple[str, ...]) -> None:
    """Whichever spelling ``user`` wrote to, each spelling of the reply (to the user
    written ``user_again``) is the one peer, and a good reply counts for them all."""
    for written in spellings:
        store.execute("DELETE FROM outbound_pairs")
        store.execute("DELETE FROM peer_inbound")
        sent(store, user, written)
        for reply in spellings:
            peer = peers.lookup(store, user_again, reply)
            assert (peer.outbound, peer.domain_partners) == (1, 0), (written, reply)
            assert [s.name for s in peers.symbols(peer, 3)] == ["PEER"]
        assert peers.record_inbound(store, user, spellings[-1], time.time())
        assert peers.lookup(store, user_again, spellings[0]).exchanges == 2
    assert store.scalar("SELECT count(*) FROM outbound_pairs") == 1


def test_a_correspondent_at_an_international_domain_is_one_peer_however_it_is_written(store):
    """A user wrote to freund@bücher.example; the reply comes from its A-label form or in
    capitals (SMTPUTF8 senders and clients spell domains either way): the same peer."""
    assert_one_peer(store, "alice@example.com", "Alice@example.com", (
        "freund@bücher.example", "freund@xn--bcher-kva.example",
        "FREUND@BÜCHER.EXAMPLE", "Freund@XN--BCHER-KVA.example"))
    # Our own user at an international domain is one user too.
    sent(store, "Anna@Bücher.example", "friend@remote.test")
    assert peers.lookup(store, "anna@xn--bcher-kva.example", "Friend@remote.test").outbound == 1
    assert peers.correspondent("prvs=0123abcd45=Freund@BÜCHER.example") \
        == "freund@xn--bcher-kva.example"


@pytest.mark.parametrize("spellings", [
    ("friend@remote.test", "friend@remote.test.", "Friend@REMOTE.test."),
    ("friend@bücher.example.", "friend@xn--bcher-kva.example.", "friend@bücher.example"),
])
def test_a_correspondent_whose_domain_ends_in_a_dot_is_one_peer_however_it_is_written(
        store, spellings: tuple[str, ...]):
    """user@example.com. is user@example.com with its domain written absolute (RFC 1034
    3.1): senders and clients write either, and the reply is from the same peer."""
    assert_one_peer(store, "alice@example.com.", "Alice@example.com", spellings)
    # Another address at the domain is a domain partner, dot or no dot.
    domain = peers.recipient_domain(peers.address_key(spellings[0]))
    assert store.scalar("SELECT recipient_domain FROM outbound_pairs") == domain
    for other in (f"boss@{domain}", f"boss@{domain}."):
        assert peers.lookup(store, "alice@example.com", other).domain_partners == 1
    assert peers.correspondent("prvs=0123abcd45=Friend@remote.test.") == "friend@remote.test"


def test_correspondents_at_a_domain_are_counted_by_an_index_not_a_scan(tmp_path):
    # Every RCPT from a stranger counts them, on the event loop: a scan of all the
    # user's pairs took 45 ms at 200,000.
    class Recording(SQLiteStore):
        def query_values(self, sql, params=()):
            queries.append((sql, params))
            return super().query_values(sql, params)

    queries: list = []
    store = Recording(tmp_path / "portcullis.db")
    store.migrate()
    for n in range(50):
        sent(store, "alice@example.com", f"user{n}@remote{n % 5}.test")
    queries.clear()
    assert peers.lookup(store, "alice@example.com", "boss@remote3.test").domain_partners == 10
    plans = [row["detail"] for sql, params in queries
             for row in store.query("EXPLAIN QUERY PLAN " + sql, params)]
    assert not [plan for plan in plans if plan.startswith("SCAN")], plans
    assert any("INDEX outbound_pairs_domain (sender=? AND recipient_domain=?)" in plan
               for plan in plans), plans


def test_pairs_an_older_release_stored_are_counted_by_domain_after_the_migration(
        tmp_path, monkeypatch):
    from portcullis.store import migrations
    from portcullis.store.migrations import reputation

    # The schema of the release before the domain column, holding pairs it wrote.
    monkeypatch.setitem(migrations.COMPONENTS, "reputation", reputation.STEPS[:1])
    old = open_store(tmp_path)
    now = time.time()
    pairs = [("alice@example.com", r) for r in
             ("friend@remote.test", "boss@remote.test", '"a@b"@remote.test',
              "freund@bücher.example", "x@other.test", "postmaster")]
    pairs += [("bob@example.com", "y@remote.test"), ("carol@example.com", "z@remote.test")]
    old.executemany("INSERT INTO outbound_pairs VALUES (?, ?, 3, ?, ?)",
                    [(s, r, now, now) for s, r in pairs])
    monkeypatch.undo()
    monkeypatch.setattr(reputation, "BATCH", 3)   # several batches, one cut inside a user
    store = open_store(tmp_path)

    assert store.scalar("SELECT version FROM schema_version WHERE component = 'reputation'") \
        == len(reputation.STEPS)
    # Recipients in address_key's form: a later step files IDNs under their A-labels.
    assert store.query_values("SELECT sender, recipient, recipient_domain, messages"
                              " FROM outbound_pairs ORDER BY sender, recipient") == sorted(
        (s, peers.address_key(r), peers.recipient_domain(r), 3) for s, r in pairs)
    assert peers.lookup(store, "alice@example.com", "new@remote.test").domain_partners == 3
    assert peers.lookup(store, "alice@example.com", "n@xn--bcher-kva.example") \
        .domain_partners == 1
    assert peers.lookup(store, "bob@example.com", "new@remote.test").domain_partners == 1
    assert peers.lookup(store, "dave@example.com", "new@remote.test").domain_partners == 0
    # Pairs learnt after the migration are counted with those from before.
    sent(store, "bob@example.com", "other@REMOTE.test")
    assert peers.lookup(store, "bob@example.com", "new@remote.test").domain_partners == 2


def test_relationships_stored_under_two_spellings_of_an_address_are_merged_by_the_migration(
        tmp_path, monkeypatch):
    """Before relationships were keyed by peers.address_key, a correspondent written to
    as freund@bücher.example and as freund@xn--bcher-kva.example had a row for each;
    the migration leaves one, holding both rows' counts and times."""
    from portcullis.store import migrations
    from portcullis.store.migrations import reputation

    monkeypatch.setitem(migrations.COMPONENTS, "reputation", reputation.STEPS[:3])
    old = open_store(tmp_path)
    idn, net, other_net = "xn--bcher-kva.example", network_of("192.0.2.1"), network_of(
        "198.51.100.1")
    old.executemany(
        "INSERT INTO outbound_pairs (sender, recipient, recipient_domain, messages,"
        " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?)",
        [("alice@example.com", "freund@bücher.example", idn, 2, 100.0, 500.0),
         ("alice@example.com", f"freund@{idn}", idn, 3, 10.0, 300.0),
         ("Alice@Example.com", "FREUND@BÜCHER.EXAMPLE", idn, 1, 50.0, 900.0),
         ("alice@example.com", "x@remote.test", "remote.test", 4, 20.0, 30.0),
         ("bob@example.com", "freund@bücher.example", idn, 1, 60.0, 70.0)])
    old.executemany(
        "INSERT INTO peer_inbound (internal, external, messages, first_seen, last_seen)"
        " VALUES (?, ?, ?, ?, ?)",
        [("alice@example.com", "freund@bücher.example", 1, 200.0, 400.0),
         ("alice@example.com", f"freund@{idn}", 2, 150.0, 600.0)])
    old.executemany(
        "INSERT INTO one_way (sender, recipient, network, credits, last_credit, first_seen,"
        " last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [("news@bücher.example", "anna@bücher.example", net, 2, 100.0, 5.0, 100.0),
         (f"news@{idn}", f"anna@{idn}", net, 1, 700.0, 50.0, 800.0),
         (f"news@{idn}", f"anna@{idn}", other_net, 1, 40.0, 40.0, 40.0)])
    monkeypatch.undo()
    monkeypatch.setattr(reputation, "BATCH", 2)   # merged rows lie in different batches
    store = open_store(tmp_path)

    assert store.scalar("SELECT version FROM schema_version WHERE component = 'reputation'") \
        == len(reputation.STEPS)
    assert store.query_values("SELECT * FROM outbound_pairs ORDER BY sender, recipient") == [
        ("alice@example.com", f"freund@{idn}", 6, 10.0, 900.0, idn),
        ("alice@example.com", "x@remote.test", 4, 20.0, 30.0, "remote.test"),
        ("bob@example.com", f"freund@{idn}", 1, 60.0, 70.0, idn)]
    assert store.query_values("SELECT * FROM peer_inbound") == [
        ("alice@example.com", f"freund@{idn}", 3, 150.0, 600.0)]
    assert store.query_values("SELECT * FROM one_way ORDER BY network") == sorted([
        (f"news@{idn}", f"anna@{idn}", net, 3, 700.0, 5.0, 800.0),
        (f"news@{idn}", f"anna@{idn}", other_net, 1, 40.0, 40.0, 40.0)],
        key=lambda row: row[2])
    peer = peers.lookup(store, "alice@example.com", "Freund@Bücher.example")
    assert (peer.outbound, peer.inbound) == (6, 3)
    assert oneway.lookup(store, "news@bücher.example", "anna@bücher.example", net).credits == 3


def test_relationships_stored_with_a_trailing_dot_are_merged_by_the_migration(
        tmp_path, monkeypatch):
    """Before peers.address_key stripped a domain's trailing dot, friend@remote.test. had
    rows of its own, filed under the domain "remote.test."; the migration leaves one row
    per relationship, under the domain its key has."""
    from portcullis.store import migrations
    from portcullis.store.migrations import reputation

    monkeypatch.setitem(migrations.COMPONENTS, "reputation", reputation.STEPS[:4])
    old = open_store(tmp_path)
    net = network_of("192.0.2.1")
    old.executemany(
        "INSERT INTO outbound_pairs (sender, recipient, recipient_domain, messages,"
        " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?)",
        [("alice@example.com", "friend@remote.test.", "remote.test.", 2, 100.0, 500.0),
         ("alice@example.com", "friend@remote.test", "remote.test", 3, 10.0, 300.0),
         ("alice@example.com", "boss@other.test.", "other.test.", 1, 50.0, 60.0),
         ("bob@example.com.", "x@remote.test", "remote.test", 1, 70.0, 80.0)])
    old.executemany(
        "INSERT INTO peer_inbound (internal, external, messages, first_seen, last_seen)"
        " VALUES (?, ?, ?, ?, ?)",
        [("alice@example.com", "friend@remote.test.", 1, 200.0, 400.0),
         ("alice@example.com", "friend@remote.test", 2, 150.0, 600.0)])
    old.executemany(
        "INSERT INTO one_way (sender, recipient, network, credits, last_credit, first_seen,"
        " last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [("news@shop.test.", "anna@example.com", net, 2, 100.0, 5.0, 100.0),
         ("news@shop.test", "anna@example.com", net, 1, 700.0, 50.0, 800.0)])
    monkeypatch.undo()
    store = open_store(tmp_path)

    assert store.scalar("SELECT version FROM schema_version WHERE component = 'reputation'") \
        == len(reputation.STEPS)
    assert store.query_values("SELECT * FROM outbound_pairs ORDER BY sender, recipient") == [
        ("alice@example.com", "boss@other.test", 1, 50.0, 60.0, "other.test"),
        ("alice@example.com", "friend@remote.test", 5, 10.0, 500.0, "remote.test"),
        ("bob@example.com", "x@remote.test", 1, 70.0, 80.0, "remote.test")]
    assert store.query_values("SELECT * FROM peer_inbound") == [
        ("alice@example.com", "friend@remote.test", 3, 150.0, 600.0)]
    assert store.query_values("SELECT * FROM one_way") == [
        ("news@shop.test", "anna@example.com", net, 3, 700.0, 5.0, 800.0)]
    assert peers.lookup(store, "alice@example.com", "new@other.test").domain_partners == 1


class RecordingStore(SQLiteStore):
    """A store that remembers every statement with its parameters."""

    def __init__(self, path) -> None:
        self.statements: list[tuple[str, tuple]] = []
        super().__init__(path)

    def execute(self, sql, params=()):
        self.statements.append((sql, tuple(params)))
        return super().execute(sql, params)

    def query_values(self, sql, params=()):
        self.statements.append((sql, tuple(params)))
        return super().query_values(sql, params)

    def query(self, sql, params=()):
        self.statements.append((sql, tuple(params)))
        return super().query(sql, params)


def _pair_plans(store: RecordingStore) -> list[str]:
    """The query plans of everything peers.py asks of ``outbound_pairs``."""
    store.statements = []
    now = time.time()
    sent(store, "alice@example.com", "friend@remote.test")
    peers.lookup(store, "alice@example.com", "friend@remote.test")
    peers.lookup(store, "alice@example.com", "stranger@remote.test")
    peers.record_inbound(store, "alice@example.com", "friend@remote.test", now)
    peers.expire(store, now - 365 * DAY)
    asked = [(sql, params) for sql, params in store.statements if "outbound_pairs" in sql]
    return [row["detail"] for sql, params in asked
            for row in store.query("EXPLAIN QUERY PLAN " + sql, params)]


def test_no_query_needs_the_recipient_index_so_outbound_mail_no_longer_writes_it(
        tmp_path, monkeypatch):
    from portcullis.store import migrations
    from portcullis.store.migrations import reputation

    # The schema that still had the index: no plan of reputation's queries uses it.
    monkeypatch.setitem(migrations.COMPONENTS, "reputation", reputation.STEPS[:2])
    old = RecordingStore(tmp_path / "portcullis.db")
    old.migrate()
    assert old.scalar("SELECT 1 FROM sqlite_master WHERE name = 'outbound_pairs_recipient'")
    plans = _pair_plans(old)
    assert plans and not [p for p in plans if "outbound_pairs_recipient" in p], plans
    monkeypatch.undo()
    store = RecordingStore(tmp_path / "portcullis.db")
    store.migrate()
    assert not store.scalar("SELECT 1 FROM sqlite_master"
                            " WHERE name = 'outbound_pairs_recipient'")
    plans = _pair_plans(store)
    assert not [p for p in plans if p.startswith("SCAN o")], plans   # outbound_pairs AS o too
    assert peers.lookup(store, "alice@example.com", "friend@remote.test").exchanges == 4


def test_one_way_credit_is_earned_once_per_interval_and_the_bonus_grows(store):
    net = network_of("192.0.2.10")
    now = time.time()
    for minute in range(5):     # a burst: one credit
        oneway.record_good(store, "news@letters.test", "bob@example.com", net,
                           now + minute * 60, 6 * 3600)
    assert oneway.lookup(store, "news@letters.test", "bob@example.com", net).credits == 1
    for day in range(1, 5):
        oneway.record_good(store, "news@letters.test", "bob@example.com", net,
                           now + day * DAY, 6 * 3600)
    relation = oneway.lookup(store, "news@letters.test", "bob@example.com", net)
    assert relation.credits == 5
    [symbol] = oneway.symbols(relation, 3)
    assert symbol.name == "ONE_WAY" and -5 <= symbol.score < -2 and symbol.flag is None
    assert oneway.symbols(oneway.OneWay(2, now), 3) == []
    # Another network is another relationship.
    assert oneway.lookup(store, "news@letters.test", "bob@example.com",
                         network_of("198.51.100.1")) is None
    assert oneway.forget_sender(store, "NEWS@letters.test", "Bob@example.com") == 1


def test_a_one_way_sender_at_an_international_domain_is_one_sender_however_it_is_written(
        store):
    net = network_of("192.0.2.10")
    now = time.time()
    spellings = ("news@bücher.example", "NEWS@XN--BCHER-KVA.EXAMPLE", "News@BÜCHER.example")
    for day, sender in enumerate(spellings):
        oneway.record_good(store, sender, "Anna@Bücher.example", net, now + day * DAY,
                           6 * 3600)
    assert store.scalar("SELECT count(*) FROM one_way") == 1
    for sender in spellings:
        relation = oneway.lookup(store, sender, "anna@xn--bcher-kva.example", net)
        assert relation is not None and relation.credits == 3, sender
        assert [s.name for s in oneway.symbols(relation, 3)] == ["ONE_WAY"]
    assert oneway.forget_sender(store, spellings[1], "ANNA@bücher.example") == 1


def test_networks_are_slash_24_and_slash_64():
    assert network_of("192.0.2.77") == "192.0.2.0/24"
    assert network_of("2001:db8:1:2:3::4") == "2001:db8:1:2::/64"
    assert network_of("::ffff:192.0.2.1") == "192.0.2.0/24"
    assert network_of("not an ip") == ""


def test_networks_are_remembered_by_address_within_a_bound():
    network_of.cache_clear()
    for n in range(3):
        assert network_of(f"203.0.113.{n}") == "203.0.113.0/24"
        assert network_of(ipaddress.ip_address(f"203.0.113.{n}")) == "203.0.113.0/24"
    assert network_of("203.0.113.1") == "203.0.113.0/24"   # asked again: remembered
    info = network_of.cache_info()
    assert (info.hits, info.misses) == (1, 6)
    assert info.maxsize is not None      # a spammer's many addresses cannot grow it
    for n in range(info.maxsize + 10):
        network_of(f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}")
    assert network_of.cache_info().currsize == info.maxsize


def connection(ip: str, verdicts: dict | None = None, refused: dict | None = None,
               when: float | None = None) -> ConnectionClosed:
    return ConnectionClosed(ip, "helo", Counter(verdicts or {}), Counter(refused or {}),
                            when or time.time())


def test_connections_are_classified_as_the_faq_says():
    assert mta.classify_connection(connection("192.0.2.1", refused={"unknown": 3}))["unwanted"]
    assert mta.classify_connection(connection("192.0.2.1", {"reject": 1, "listed": 1}))[
        "unwanted"]
    good = mta.classify_connection(connection("192.0.2.1", {"accept": 2}))
    assert good["accepted"] and not good["unwanted"]
    assert not mta.classify_connection(connection("192.0.2.1", {"accept": 1, "tag": 1}))[
        "accepted"]
    # A greylisted attempt was not judged, so it is not counted at all.
    assert not mta.counts_as_connection(connection("192.0.2.1",
                                                   refused={"policy-temporary": 1}))
    # Nor is mail a domain without filtering took unjudged; beside judged mail it neither
    # makes the connection accepted nor stops it being so.
    assert not mta.counts_as_connection(connection("192.0.2.1", {UNFILTERED: 5}))
    assert mta.classify_connection(connection("192.0.2.1", {"accept": 1, UNFILTERED: 3}))[
        "accepted"]
    assert not mta.classify_connection(connection("192.0.2.1", {"tag": 1, UNFILTERED: 3}))[
        "accepted"]


def test_top_spammers_need_50_connections_95_percent_unwanted(store):
    for _ in range(49):
        mta.record(store, connection("192.0.2.66", refused={"unknown": 1}))
    assert mta.top_spammers(store) == []
    mta.record(store, connection("192.0.2.66", refused={"relay": 1}))
    [spammer] = mta.top_spammers(store)
    assert spammer.address == "192.0.2.66" and spammer.connections == 50
    for _ in range(3):   # 53 connections, 50 unwanted: below 95%
        mta.record(store, connection("192.0.2.66", {"accept": 1}))
    assert mta.top_spammers(store) == []
    assert mta.standing(store, "192.0.2.0/24").connections == 53


def test_top_legitimate_need_over_50_connections_95_percent_accepted(store):
    for _ in range(50):
        mta.record(store, connection("198.51.100.7", {"accept": 1}))
    assert mta.top_legitimate(store) == []
    mta.record(store, connection("198.51.100.7", {"accept": 3}))
    [legitimate] = mta.top_legitimate(store)
    assert legitimate.address == "198.51.100.7" and legitimate.accepted_share == 1.0


def test_top_lists_hold_the_busiest_50(store):
    rows = [(f"203.0.113.{i}", "ip", 60 + i, 60 + i, 0, 0, 0, 1.0, 1.0) for i in range(60)]
    store.executemany("INSERT INTO mta_reputation VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    top = mta.top_spammers(store)
    assert len(top) == 50 and top[0].address == "203.0.113.59"


def test_mta_record_feeds_the_score(store):
    assert mta.symbols(store, "192.0.2.66") == []
    for _ in range(12):
        mta.record(store, connection("192.0.2.66", refused={"unknown": 1}))
    [bad] = mta.symbols(store, "192.0.2.66")
    assert bad.name == "MTA_BAD_IP" and bad.score > 0
    for _ in range(25):
        mta.record(store, connection("192.0.2.67", refused={"unknown": 1}))
    # A fresh address in a bad network inherits some of its record.
    assert [s.name for s in mta.symbols(store, "192.0.2.99")] == ["MTA_BAD_NET"]
    # So does one whose own record is mixed (neither bad nor good enough to stand alone).
    for _ in range(6):
        mta.record(store, connection("192.0.2.98", {"accept": 1}))
        mta.record(store, connection("192.0.2.98", refused={"unknown": 1}))
    assert mta.standing(store, "192.0.2.98").connections == 12
    assert [s.name for s in mta.symbols(store, "192.0.2.98")] == ["MTA_BAD_NET"]
    for _ in range(20):
        mta.record(store, connection("198.51.100.7", {"accept": 1}))
    assert mta.symbols(store, "198.51.100.7")[0].score < 0


def test_an_address_with_little_history_gets_its_good_networks_bonus(store):
    for _ in range(25):
        mta.record(store, connection("198.51.100.7", {"accept": 1}))
    assert [s.name for s in mta.symbols(store, "198.51.100.7")] == ["MTA_GOOD_IP"]
    assert [s.name for s in mta.symbols(store, "198.51.100.8")] == ["MTA_GOOD_NET"]
    for _ in range(3):        # its own record too short to stand alone
        mta.record(store, connection("198.51.100.9", {"accept": 1}))
    [bonus] = mta.symbols(store, "198.51.100.9")
    assert bonus.name == "MTA_GOOD_NET" and "198.51.100.0/24" in bonus.reason
    assert mta.symbols(store, "203.0.113.1") == [] and mta.symbols(store, "not an ip") == []


def test_mta_counters_decay_by_half_life_and_empty_rows_go(store):
    start = 1_000_000_000.0
    mta.decay(store, 30, now=start)           # first run only remembers when
    mta.record(store, connection("192.0.2.1", refused={"unknown": 1}, when=start))
    for _ in range(100):
        mta.record(store, connection("192.0.2.2", refused={"unknown": 1}, when=start))
    assert mta.decay(store, 30, now=start + 0.5 * DAY) == 0     # not a whole day yet
    assert mta.standing(store, "192.0.2.2").connections == 100
    removed = mta.decay(store, 30, now=start + 30 * DAY)
    assert removed == 1                                        # 192.0.2.1 fell below 1
    assert mta.standing(store, "192.0.2.2").connections == pytest.approx(50)


def test_relationships_expire_when_unused(store):
    old = time.time() - 400 * DAY
    sent(store, "a@example.com", "x@r.test", when=old)
    store.execute("INSERT INTO peer_inbound VALUES ('a@example.com', 'x@r.test', 4, ?, ?)",
                  (old, time.time()))
    sent(store, "b@example.com", "y@r.test")
    assert peers.expire(store, time.time() - 365 * DAY) == 2
    assert store.scalar("SELECT count(*) FROM outbound_pairs") == 1


def test_spam_forged_from_a_correspondent_earns_no_exchanges(tmp_path):
    services = Services.open(temporary_config(tmp_path))
    sent(services.store, "alice@example.com", "friend@remote.test")
    learner = ReputationLearner(services)

    def deliver(score: float) -> None:
        peer = peers.symbols(peers.lookup(services.store, "alice@example.com",
                                          "friend@remote.test"), 3)
        ctx = Context(client_ip="192.0.2.9", mail_from="friend@remote.test",
                      recipients=["alice@example.com"], route=INBOUND,
                      snapshot=load_snapshot(services.store, services.config))
        learner.message(MessageEvent(ctx, decide([Symbol("SPAMMY", score), *peer], T), True,
                                     "id"))

    for _ in range(4):
        deliver(12.0)       # spam the peer bonus lets through (tagged, then accepted)
    assert peers.lookup(services.store, "alice@example.com", "friend@remote.test").inbound == 0
    deliver(1.0)            # a good reply counts
    assert peers.lookup(services.store, "alice@example.com", "friend@remote.test").inbound == 1


def test_white_listed_spam_earns_no_exchanges_and_no_one_way_credits(tmp_path):
    """The white list accepts a forged listed sender's spam; what it lets in must not
    build a peer's protection or a one-way bonus that outlives the list entry."""
    services = Services.open(temporary_config(tmp_path))
    sent(services.store, "alice@example.com", "bob@partner.test")
    learner = ReputationLearner(services)
    white = Symbol("WHITELIST", -100.0, "White list: sender (partner.test)", Flag.WHITELIST)
    for sender in ("bob@partner.test", "news@partner.test", "bob@partner.test"):
        ctx = Context(client_ip="192.0.2.9", mail_from=sender, recipients=["alice@example.com"],
                      route=INBOUND, snapshot=load_snapshot(services.store, services.config))
        learner.message(MessageEvent(ctx, decide([white, Symbol("SPAMMY", 20.0)], T), True,
                                     "id"))
    assert peers.lookup(services.store, "alice@example.com", "bob@partner.test").inbound == 0
    assert services.store.scalar("SELECT count(*) FROM one_way") == 0


def test_an_mtas_good_record_is_no_evidence_that_its_message_was_good(tmp_path):
    """The MTA's bonus, like a relationship's, is what reputation already thinks: spammy
    mail it lifts below the middle of the Tag band must not earn exchanges or one-way
    credits (a spammer's MTA with a clean record laundering its own mail into a peer's
    protection).  Its penalty still holds a message back."""
    services = Services.open(temporary_config(tmp_path))
    store = services.store
    sent(store, "alice@example.com", "friend@remote.test")
    for _ in range(mta.SCORE_MIN_IP):
        mta.record(store, connection("192.0.2.9", {"accept": 1}))
        mta.record(store, connection("198.51.100.9", refused={"unknown": 1}))
    learner = ReputationLearner(services)

    def deliver(ip: str, score: float) -> None:
        found = [Symbol("SPAMMY", score), *mta.symbols(store, ip)]
        for sender in ("friend@remote.test", "news@remote.test"):
            ctx = Context(client_ip=ip, mail_from=sender, recipients=["alice@example.com"],
                          route=INBOUND, snapshot=load_snapshot(store, services.config))
            decision = decide(found, T)
            assert decision.verdict in (Verdict.ACCEPT, Verdict.TAG)
            learner.message(MessageEvent(ctx, decision, True, "id"))

    assert [s.name for s in mta.symbols(store, "192.0.2.9")] == ["MTA_GOOD_IP"]
    deliver("192.0.2.9", 9.0)      # 7.5 with the bonus, below the middle (8.5): tagged
    deliver("198.51.100.9", 7.0)   # below the middle on its own, not with the penalty
    assert peers.lookup(store, "alice@example.com", "friend@remote.test").inbound == 0
    assert store.scalar("SELECT count(*) FROM one_way") == 0
    deliver("192.0.2.9", 1.0)      # good on its own evidence: counts
    assert peers.lookup(store, "alice@example.com", "friend@remote.test").inbound == 1
    assert store.scalar("SELECT count(*) FROM one_way") == 1


def test_mail_whose_sender_failed_spf_earns_no_exchanges_and_no_one_way_credits(tmp_path):
    """A forger who knows Alice wrote to friend@remote.test sends benign mail under that
    address from its own server: SPF (or the domain's DMARC reject or quarantine policy)
    says so, and it must not count as the friend's replies (two made it protected)."""
    services = Services.open(temporary_config(tmp_path))
    sent(services.store, "alice@example.com", "friend@remote.test")
    learner = ReputationLearner(services)
    for spf in ("SPF_FAIL", "SPF_SOFTFAIL", "DMARC_FAIL_REJECT", "DMARC_FAIL_QUARANTINE"):
        for sender in ("friend@remote.test", "news@remote.test"):
            ctx = Context(client_ip="192.0.2.9", mail_from=sender,
                          recipients=["alice@example.com"], route=INBOUND,
                          snapshot=load_snapshot(services.store, services.config))
            found = [Symbol(spf, 3.5), Symbol("BAYES_00", -2.0)]
            learner.message(MessageEvent(ctx, decide(found, T), True, "id"))
    assert peers.lookup(services.store, "alice@example.com", "friend@remote.test").inbound == 0
    assert services.store.scalar("SELECT count(*) FROM one_way") == 0


def test_a_correspondent_whose_server_signs_senders_with_batv_is_one_correspondent(tmp_path):
    """prvs=TAG=friend@remote.test carries a fresh tag in every message: the reply got
    no peer bonus, and every newsletter issue began a one-way relationship of its own."""
    services = Services.open(temporary_config(tmp_path))
    sent(services.store, "alice@example.com", "friend@remote.test")
    learner = ReputationLearner(services)

    def ctx(sender: str) -> Context:
        return Context(client_ip="192.0.2.9", mail_from=sender, recipient="alice@example.com",
                       recipients=["alice@example.com"], route=INBOUND,
                       snapshot=load_snapshot(services.store, services.config))

    found = asyncio.run(Relationships(services).check(ctx("prvs=0123abcd45=Friend@remote.test")))
    assert [s.name for s in found] == ["PEER"]
    for tag in ("0123abcd45", "0567ef8901"):
        for sender in ("friend", "news"):
            learner.message(MessageEvent(ctx(f"prvs={tag}={sender}@remote.test"),
                                         decide([Symbol("BAYES_00", -2.0)], T), True, "id"))
    assert peers.lookup(services.store, "alice@example.com", "friend@remote.test").inbound == 2
    # One relationship (a credit per interval), not one per issue.
    assert services.store.query("SELECT sender FROM one_way") == [{"sender": "news@remote.test"}]
    assert oneway.forget_sender(services.store, "prvs=0999aaaa11=news@remote.test",
                                "alice@example.com") == 1


def test_an_ipv6_sender_is_its_slash_64_one_record_that_reaches_top_spammers(store):
    # A new address of its /64 for every connection: 50 rows of one connection each kept
    # the spammer off Top Spammers and MTA_BAD_IP, and each connection added a row.
    for i in range(50):
        mta.record(store, connection(f"2001:db8:1::{i + 1:x}", refused={"unknown": 1}))
    assert store.scalar("SELECT count(*) FROM mta_reputation") == 1
    [spammer] = mta.top_spammers(store)
    assert spammer.address == "2001:db8:1::/64" and spammer.connections == 50
    assert [s.name for s in mta.symbols(store, "2001:db8:1::ffff")] == ["MTA_BAD_IP"]
    # IPv4 keeps a record per address and one for its /24.
    mta.record(store, connection("::ffff:192.0.2.7", refused={"unknown": 1}))
    assert mta.standing(store, "192.0.2.7").connections == 1
    assert mta.standing(store, "192.0.2.0/24").connections == 1


def test_mail_forging_our_own_domain_earns_no_one_way_credits(tmp_path):
    """Authentication flags a stranger claiming our own protected domain without SPF or
    DKIM for it as forged (FORGED_OWN_DOMAIN, Flag.FORGED): benign mail of that kind from
    the forger's network must not build a one-way bonus for the CEO's address there,
    which its later CEO fraud would then collect."""
    services = Services.open(temporary_config(tmp_path))
    learner = ReputationLearner(services)
    forged = Symbol("FORGED_OWN_DOMAIN", 3.0, "sender claims protected domain example.com",
                    Flag.FORGED)
    for _ in range(3):
        ctx = Context(client_ip="198.51.100.9", mail_from="ceo@example.com",
                      recipients=["bob@example.com"], route=INBOUND,
                      snapshot=load_snapshot(services.store, services.config))
        decision = decide([forged, Symbol("BAYES_00", -2.0)], T)
        assert decision.verdict is Verdict.ACCEPT
        learner.message(MessageEvent(ctx, decision, True, "id"))
    assert services.store.scalar("SELECT count(*) FROM one_way") == 0
