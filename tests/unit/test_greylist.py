"""Greylisting's memory, with a clock the test controls (a real SQLite store)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from portcullis.addresses import AddressError
from portcullis.checks.base import Context
from portcullis.checks.greylist import (
    Greylist,
    Greylisting,
    GreylistPolicy,
    Outcome,
    client_network,
    normalise_sender,
    parse_client,
)
from portcullis.checks.harvest import HarvestPolicy, record_refusal
from portcullis.directory.snapshot import load_snapshot
from portcullis.directory.valid_addresses import import_addresses
from portcullis.policy import Flag, Symbol
from portcullis.smtp.recipients import route
from portcullis.store import open_store
from tests.support.dns import Dnsmasq

pytestmark = pytest.mark.defenses

POLICY = GreylistPolicy(delay=120, window=48 * 3600, expiry=35 * 86400, awl_passes=3)
NET = "192.0.2.0/24"
T0 = 1_000_000.0


@pytest.fixture
def greylist(tmp_path) -> Greylist:
    return Greylist(open_store(tmp_path))


def test_first_attempt_is_deferred(greylist: Greylist) -> None:
    outcome, wait = greylist.consult(NET, "a@example.net", "u@corp.test", POLICY, T0)
    assert outcome is Outcome.NEW and outcome.defer and wait == 120


def test_retry_before_the_delay_is_deferred_again(greylist: Greylist) -> None:
    greylist.consult(NET, "a@example.net", "u@corp.test", POLICY, T0)
    outcome, wait = greylist.consult(NET, "a@example.net", "u@corp.test", POLICY, T0 + 60)
    assert outcome is Outcome.EARLY and wait == 60


def test_greylist_passes_retry_after_delay(greylist: Greylist) -> None:
    greylist.consult(NET, "a@example.net", "u@corp.test", POLICY, T0)
    outcome, waited = greylist.consult(NET, "a@example.net", "u@corp.test", POLICY, T0 + 300)
    assert outcome is Outcome.PASSED and waited == 300
    later = greylist.consult(NET, "a@example.net", "u@corp.test", POLICY, T0 + 86400)[0]
    assert later is Outcome.KNOWN


def test_retry_after_the_window_starts_over(greylist: Greylist) -> None:
    greylist.consult(NET, "a@example.net", "u@corp.test", POLICY, T0)
    outcome, _ = greylist.consult(NET, "a@example.net", "u@corp.test", POLICY,
                                  T0 + POLICY.window + 1)
    assert outcome is Outcome.NEW


def test_each_triplet_is_greylisted_on_its_own(greylist: Greylist) -> None:
    greylist.consult(NET, "a@example.net", "u@corp.test", POLICY, T0)
    greylist.consult(NET, "a@example.net", "u@corp.test", POLICY, T0 + 300)
    assert greylist.consult(NET, "a@example.net", "v@corp.test", POLICY, T0 + 301)[0] \
        is Outcome.NEW
    assert greylist.consult("198.51.100.0/24", "a@example.net", "u@corp.test", POLICY,
                            T0 + 301)[0] is Outcome.NEW


def test_network_is_auto_whitelisted_after_enough_passes(greylist: Greylist) -> None:
    for n in range(POLICY.awl_passes):
        greylist.consult(NET, f"s{n}x@example.net", "u@corp.test", POLICY, T0)
        greylist.consult(NET, f"s{n}x@example.net", "u@corp.test", POLICY, T0 + 300)
    outcome, _ = greylist.consult(NET, "stranger@example.org", "w@corp.test", POLICY, T0 + 400)
    assert outcome is Outcome.TRUSTED


def test_purge_forgets_unretried_and_unused_entries(greylist: Greylist) -> None:
    greylist.consult(NET, "never-retried@example.net", "u@corp.test", POLICY, T0)
    greylist.consult(NET, "good@example.net", "u@corp.test", POLICY, T0)
    greylist.consult(NET, "good@example.net", "u@corp.test", POLICY, T0 + 300)
    assert greylist.purge(POLICY, T0 + POLICY.window + 10) == 1
    assert greylist.purge(POLICY, T0 + 300 + POLICY.expiry + 10) == 2   # entry + network


@pytest.mark.parametrize(("address", "expected"), [
    ("User@Example.NET", "user@example.net"),
    ("prvs=1234abcd=user@example.net", "user@example.net"),
    ("list-bounces+user=corp.test@lists.example.org", "list-bounces@lists.example.org"),
    ("bounce-20261129-4711@mailer.example.com", "bounce-#-#@mailer.example.com"),
    ("SRS0=HHH=TT=orig.example=user@forwarder.example", "srs@forwarder.example"),
    ("", ""),
])
def test_sender_is_normalised_so_bounce_tokens_do_not_make_new_triplets(address: str,
                                                                        expected: str) -> None:
    assert normalise_sender(address) == expected


def test_client_network_is_the_slash_24_or_slash_64() -> None:
    assert client_network(ipaddress.ip_address("192.0.2.77")) == "192.0.2.0/24"
    assert client_network(ipaddress.ip_address("2001:db8:1:2:3::9")) == "2001:db8:1:2::/64"


def test_repeating_a_passed_triplet_is_not_another_pass(greylist: Greylist) -> None:
    greylist.consult(NET, "spam@example.net", "u@corp.test", POLICY, T0)
    greylist.consult(NET, "spam@example.net", "u@corp.test", POLICY, T0 + 300)   # one pass
    for n in range(10):                           # the same RCPT again and again
        assert greylist.consult(NET, "spam@example.net", "u@corp.test", POLICY,
                                T0 + 301 + n)[0] is Outcome.KNOWN
    assert greylist.consult(NET, "other@example.org", "w@corp.test", POLICY, T0 + 400)[0] \
        is Outcome.NEW                            # the network is not auto-whitelisted


def test_a_network_cannot_store_more_waiting_triplets_than_the_bound(greylist: Greylist,
                                                                    monkeypatch) -> None:
    from portcullis.checks import greylist as module
    monkeypatch.setattr(module, "MAX_WAITING_PER_NETWORK", 20)
    policy = GreylistPolicy(delay=120, window=48 * 3600, expiry=35 * 86400, awl_passes=0)
    for n in range(50):
        assert greylist.consult(NET, "guess@example.net", f"u{n}@corp.test", policy, T0)[0] \
            is Outcome.NEW
    rows = greylist.store.scalar("SELECT COUNT(*) FROM greylist WHERE network = ?", (NET,))
    assert rows == 20
    assert greylist.consult("198.51.100.0/24", "a@example.net", "u@corp.test", policy,
                            T0)[0] is Outcome.NEW     # other networks are not affected
    # once stored ones pass, new ones are stored again: a real mailing gets through
    for n in range(20):
        greylist.consult(NET, "guess@example.net", f"u{n}@corp.test", policy, T0 + 300)
    greylist.consult(NET, "guess@example.net", "u49@corp.test", policy, T0 + 301)
    assert greylist.consult(NET, "guess@example.net", "u49@corp.test", policy,
                            T0 + 700)[0] is Outcome.PASSED


@pytest.fixture
def zone(tmp_path):
    """The senders' DNS, on loopback (greylisting asks for their SPF records)."""
    dnsmasq = Dnsmasq(tmp_path / "dns", ["pool.test", "open.test", "bulk.example"])
    dnsmasq.txt("pool.test", "v=spf1 ip4:198.51.100.0/22 -all")    # a pool of /24s
    dnsmasq.txt("open.test", "v=spf1 +all")                         # anyone at all
    yield dnsmasq.start()
    dnsmasq.stop()


@pytest.fixture
def services(tmp_path, zone):
    from dataclasses import replace

    from portcullis.bayes.evaluate import temporary_config
    from portcullis.config import DnsConfig
    from portcullis.directory.domains import add_domain
    from portcullis.services import Services

    services = Services.open(replace(temporary_config(tmp_path), dns=DnsConfig(
        nameservers=("127.0.0.1",), port=zone.port, timeout=2.0)))
    # List validation only: the FAQ's set-up for a server that cannot answer callouts.
    add_domain(services.store, "bücher.example", "192.0.2.25:25", smtp_validation=False,
               reject_non_validated=True)
    assert not import_addresses(services.store, "bücher.example", "dave@bücher.example").errors
    yield services
    services.close()


def rcpt(services, recipient: str, client_ip: str = "198.51.100.7",
         earlier: list[Symbol] | None = None, mail_from: str = "spam@bulk.example"
         ) -> list[Symbol]:
    """What the greylisting check finds for one RCPT from ``client_ip``."""
    snapshot = load_snapshot(services.store, services.config)
    ctx = Context(client_ip=client_ip, mail_from=mail_from, recipient=recipient,
                  snapshot=snapshot, earlier=earlier or [],
                  route=route(snapshot, False, recipient, services.config.outbound.relay_host))
    return asyncio.run(Greylisting(services).check(ctx))


@pytest.mark.parametrize("recipient", ["dave@xn--bcher-kva.example", "dave@bücher.example",
                                       "Dave@BÜCHER.example"])
def test_a_listed_recipient_is_greylisted_however_its_domain_is_written(
        services, recipient: str) -> None:
    # Written in U-labels it was taken for one that validation would refuse (lists hold
    # A-labels), and got through ungreylisted.
    assert [s.name for s in rcpt(services, recipient)] == ["GREYLISTED"]


def test_a_client_refused_anyway_fills_no_greylist_and_earns_no_trust(services) -> None:
    # A DNSBL-listed client gets its 550, a harvester its block: recording their attempts
    # grew the table with every botnet address, and a retrying one's passes counted
    # towards trusting its network.
    listed = Symbol("DNSBL_SPAMHAUS_ORG", 5.0, "RBL Block: spamhaus.org", Flag.REJECT)
    assert rcpt(services, "dave@bücher.example", earlier=[listed]) == []
    settings = load_snapshot(services.store, services.config).settings
    for _ in range(settings["harvest_threshold"]):
        record_refusal(services.store, "203.0.113.9", HarvestPolicy.from_settings(settings))
    assert rcpt(services, "dave@bücher.example", client_ip="203.0.113.9") == []
    assert services.store.scalar("SELECT COUNT(*) FROM greylist") == 0
    # the same recipient from a client no one refuses is greylisted as ever
    assert [s.name for s in rcpt(services, "dave@bücher.example", "192.0.2.80")] == \
        ["GREYLISTED"]


def test_retried_guesses_refused_as_unknown_earn_a_network_no_trust(services) -> None:
    # A harvester that retries its guesses after the delay passes greylisting for each,
    # then gets 550 User unknown from the internal host's answer (the callout comes
    # after greylisting); those passes made its network trusted, and it was greylisted
    # no more.  A refusal as unknown takes the triplet and its pass back.
    from portcullis.observers import Observers, RecipientRefused

    observers = Observers(services)
    policy = GreylistPolicy.from_settings(
        load_snapshot(services.store, services.config).settings)
    greylist = Greylist(services.store)
    network = client_network(ipaddress.ip_address("203.0.113.9"))
    for n in range(policy.awl_passes + 2):
        guess = f"guess{n}@bücher.example"
        greylist.consult(network, "spam@bulk.example", guess, policy, T0)
        assert greylist.consult(network, "spam@bulk.example", guess, policy,
                                T0 + 300)[0] is Outcome.PASSED
        observers.recipient_refused(RecipientRefused(
            "203.0.113.9", "bot", "spam@bulk.example", guess, "unknown"))
    assert greylist.consult(network, "other@bulk.example", "dave@bücher.example", policy,
                            T0 + 400)[0] is Outcome.NEW
    assert greylist.entries(network=network)[0]["recipient"] == "dave@bücher.example"
    assert len(greylist.entries(network=network)) == 1      # the guesses are forgotten
    # A real sender's passes (its recipients exist) still make its network trusted.
    for n in range(policy.awl_passes):
        greylist.consult(network, f"s{n}x@good.example", "dave@bücher.example", policy, T0)
        greylist.consult(network, f"s{n}x@good.example", "dave@bücher.example", policy,
                         T0 + 300)
    assert greylist.consult(network, "new@good.example", "dave@bücher.example", policy,
                            T0 + 400)[0] is Outcome.TRUSTED
    # The same for guesses greylisted as the sender's SPF-authorised pool.
    pool_server = client_network(ipaddress.ip_address("198.51.100.7"))
    greylist.consult("spf:pool.test", "news@pool.test", "guess@bücher.example", policy, T0)
    greylist.consult("spf:pool.test", "news@pool.test", "guess@bücher.example", policy,
                     T0 + 300, client=pool_server)
    observers.recipient_refused(RecipientRefused(
        "198.51.100.7", "mx.pool.test", "news@pool.test", "guess@bücher.example", "unknown"))
    assert greylist.entries(network="spf:pool.test") == []
    assert services.store.scalar("SELECT passes FROM greylist_awl WHERE network = ?",
                                 (pool_server,)) == 0


def test_a_retry_from_another_server_of_the_senders_pool_passes(services) -> None:
    # Microsoft 365 and Gmail retry from another server each time, seldom in the same
    # /24: every retry was a first attempt, and the message waited for hours or bounced.
    # A server the sender's SPF record authorises is the same source as the first one.
    from portcullis.directory.settings import set_settings

    set_settings(services.store, services.config, {"greylist_delay": 0})
    assert [s.name for s in rcpt(services, "dave@bücher.example", "198.51.100.7",
                                 mail_from="news@pool.test")] == ["GREYLISTED"]
    assert [s.name for s in rcpt(services, "dave@bücher.example", "198.51.101.9",
                                 mail_from="news@pool.test")] == ["GREYLIST_PASSED"]
    # The administrator sees the pool's entry and names it to forget it.
    assert "spf:pool.test" in {e["network"] for e in Greylist(services.store).entries()}
    assert parse_client(" SPF:Pool.TEST. ") == "spf:pool.test"
    # A record that lets anyone send names no pool: the client's network is the source.
    for client in ("198.51.100.7", "203.0.113.5"):
        assert [s.name for s in rcpt(services, "dave@bücher.example", client,
                                     mail_from="news@open.test")] == ["GREYLISTED"]
    # Nor does a server outside the pool pass on the pool's first attempt.
    assert [s.name for s in rcpt(services, "dave@bücher.example", "198.51.100.7",
                                 mail_from="offers@pool.test")] == ["GREYLISTED"]
    assert [s.name for s in rcpt(services, "dave@bücher.example", "192.0.2.80",
                                 mail_from="offers@pool.test")] == ["GREYLISTED"]


def test_a_senders_spf_pool_is_never_trusted_as_a_whole(services) -> None:
    # Whoever owns a domain writes its SPF record: passes from its pool let the next
    # triplet through only when that triplet retried, never the whole pool at once.
    from portcullis.directory.settings import set_settings

    set_settings(services.store, services.config, {"greylist_delay": 0})
    policy = GreylistPolicy.from_settings(load_snapshot(services.store, services.config)
                                          .settings)

    def pass_one(sender: str, retry_from: str) -> None:
        rcpt(services, "dave@bücher.example", "198.51.100.7", mail_from=sender)
        assert [s.name for s in rcpt(services, "dave@bücher.example", retry_from,
                                     mail_from=sender)] == ["GREYLIST_PASSED"]

    for n in range(8):            # retried from three /24s of the pool, none trusted yet
        pass_one(f"news{'x' * n}@pool.test", f"198.51.{101 + n % 3}.9")
    assert [s.name for s in rcpt(services, "dave@bücher.example", "198.51.100.3",
                                 mail_from="fresh@pool.test")] == ["GREYLISTED"]
    assert Greylist(services.store).trusted_networks(policy) == []
    # Each pass counts for the network the retry came from, as it did before the pool
    # was a source: a busy server of the pool is trusted as a network is.
    for n in range(8, 8 + policy.awl_passes - 3):
        pass_one(f"news{'x' * n}@pool.test", "198.51.101.9")
    assert [t["network"] for t in Greylist(services.store).trusted_networks(policy)] == \
        ["198.51.101.0/24"]
    assert rcpt(services, "dave@bücher.example", "198.51.101.77",
                mail_from="fresh@pool.test") == []


def test_expired_waiting_triplets_do_not_count_towards_the_bound(greylist: Greylist,
                                                                 monkeypatch) -> None:
    # Attempts never retried within the window are forgotten, but until the hourly purge
    # removed them they still counted: a network that had filled its bound days ago was
    # refused storage (and so greylisting could never pass) for its next real mail.
    from portcullis.checks import greylist as module
    monkeypatch.setattr(module, "MAX_WAITING_PER_NETWORK", 5)
    policy = GreylistPolicy(delay=120, window=4 * 3600, expiry=35 * 86400, awl_passes=0)
    for n in range(5):
        greylist.consult(NET, "old@example.net", f"u{n}@corp.test", policy, T0)
    later = T0 + policy.window + 60          # every one of them expired, none purged yet
    greylist.consult(NET, "real@example.net", "boss@corp.test", policy, later)
    assert greylist.consult(NET, "real@example.net", "boss@corp.test", policy,
                            later + 300)[0] is Outcome.PASSED



def test_servers_of_one_senders_pool_do_not_share_one_bound(greylist: Greylist,
                                                            monkeypatch) -> None:
    # An SPF source (spf:DOMAIN) stands for every server of a big provider: counted as one
    # source, a single network of it (or anyone able to send through it) filled the
    # bound for all its senders, whose first attempts were then never stored and whose
    # mail never passed.  The bound is per client network, whatever the source.
    from portcullis.checks import greylist as module
    monkeypatch.setattr(module, "MAX_WAITING_PER_NETWORK", 5)
    policy = GreylistPolicy(delay=120, window=48 * 3600, expiry=35 * 86400, awl_passes=0)
    flooding, other = "198.51.100.0/24", "198.51.101.0/24"
    for n in range(20):
        greylist.consult("spf:pool.test", "bulk@pool.test", f"u{n}@corp.test", policy, T0,
                         client=flooding)
    assert greylist.store.scalar("SELECT COUNT(*) FROM greylist") == 5
    greylist.consult("spf:pool.test", "alice@pool.test", "boss@corp.test", policy, T0,
                     client=other)
    assert greylist.consult("spf:pool.test", "alice@pool.test", "boss@corp.test", policy,
                            T0 + 300, client=flooding)[0] is Outcome.PASSED
    # The flooding network's own attempts, under its network or the pool, stay bounded.
    assert greylist.consult(flooding, "x@elsewhere.example", "v@corp.test", policy,
                            T0 + 400)[0] is Outcome.NEW
    assert greylist.store.scalar("SELECT COUNT(*) FROM greylist WHERE passed IS NULL") == 5


def test_a_recipient_of_a_domain_deferred_for_its_empty_list_is_not_greylisted(
        services) -> None:
    # Validation defers every recipient of a list-only domain whose list is empty (451
    # Temporary lookup failure); greylisting answered first, stored a triplet for each
    # guessed address, and the client and the log read "Greylisted" until the retry,
    # not why the domain's mail waits.
    from portcullis.directory.domains import add_domain

    add_domain(services.store, "empty.example", "192.0.2.26:25", smtp_validation=False,
               reject_non_validated=True)
    assert rcpt(services, "anyone@empty.example") == []
    assert Greylist(services.store).entries() == []


def test_a_users_subaddresses_are_one_recipient_for_greylisting(services) -> None:
    # A tagged address (dave+news@, recipient_delimiter) was refused as unknown by the
    # list and so never greylisted; taken now, it is dave@'s mail: a sender that passed
    # for dave+news@ does not wait again for dave+shop@ or dave@.
    from portcullis.directory.settings import set_settings
    from portcullis.observers import Observers, RecipientRefused

    set_settings(services.store, services.config, {"greylist_delay": 0})
    assert [s.name for s in rcpt(services, "dave+news@bücher.example")] == ["GREYLISTED"]
    assert [s.name for s in rcpt(services, "dave+news@bücher.example")] == \
        ["GREYLIST_PASSED"]
    assert rcpt(services, "Dave+Shop@bücher.example") == []
    assert rcpt(services, "dave@bücher.example") == []
    assert [e["recipient"] for e in Greylist(services.store).entries()] == \
        ["dave@bücher.example"]
    # A tag the internal host refuses (it takes no subaddresses, or a typo) is no guess
    # at dave, who is listed: the triplet is dave@'s, and taking it back had the
    # sender's next mail to dave@ wait out greylisting again.
    observers = Observers(services)
    observers.recipient_refused(RecipientRefused(
        "198.51.100.7", "bot", "spam@bulk.example", "dave+x@bücher.example", "unknown"))
    assert rcpt(services, "dave@bücher.example") == []
    assert [e["recipient"] for e in Greylist(services.store).entries()] == \
        ["dave@bücher.example"]
    # A guessed user's tag is a guess as any other: its triplet is taken back.
    policy = GreylistPolicy.from_settings(
        load_snapshot(services.store, services.config).settings)
    Greylist(services.store).consult(client_network(ipaddress.ip_address("198.51.100.7")),
                                     "spam@bulk.example", "nobody+x@bücher.example", policy)
    observers.recipient_refused(RecipientRefused(
        "198.51.100.7", "bot", "spam@bulk.example", "nobody+x@bücher.example", "unknown"))
    assert [e["recipient"] for e in Greylist(services.store).entries()] == \
        ["dave@bücher.example"]
    # Without a delimiter each address is its own recipient (and dave+news@ unknown).
    set_settings(services.store, services.config, {"recipient_delimiter": "",
                                                   "greylist_delay": 60})
    assert rcpt(services, "dave+news@bücher.example") == []
    assert [s.name for s in rcpt(services, "dave@bücher.example",
                                 mail_from="other@bulk.example")] == ["GREYLISTED"]


@pytest.mark.parametrize(("typed", "network"), [
    ("192.0.2.77", "192.0.2.0/24"),
    ("192.0.2.77/32", "192.0.2.0/24"),          # an address written as a network
    ("192.0.2.64/26", "192.0.2.0/24"),
    (" 192.0.2.0/24 ", "192.0.2.0/24"),
    ("2001:db8:1:2::9/128", "2001:db8:1:2::/64"),
    ("2001:DB8:1:2:0::/80", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.77/128", "192.0.2.0/24"),
])
def test_a_client_is_named_by_the_network_it_is_greylisted_as(greylist: Greylist, typed: str,
                                                              network: str) -> None:
    # A network narrower than a /24 (or /64) was kept as written: `greylist forget
    # 192.0.2.77/32` forgot nothing and `greylist show --client` showed nothing, while
    # the client's entries stayed.
    greylist.consult(client_network(ipaddress.ip_address("192.0.2.77")), "a@example.net",
                     "u@corp.test", POLICY, T0)
    greylist.consult("2001:db8:1:2::/64", "a@example.net", "u@corp.test", POLICY, T0)
    assert parse_client(typed) == network
    assert len(greylist.entries(network=parse_client(typed))) == 1
    assert greylist.forget(parse_client(typed)) == 1


@pytest.mark.parametrize("typed", ["192.0.0.0/16", "2001:db8::/48", "0.0.0.0/0"])
def test_a_network_wider_than_a_greylisted_client_is_refused_saying_so(typed: str) -> None:
    # No entry is kept for a network wider than a /24 (/64): naming one matched none,
    # and "0 entries forgotten" read as if the network had none.
    with pytest.raises(AddressError, match="wider than one client network"):
        parse_client(typed)


def test_a_client_networks_entries_include_those_keyed_by_its_senders_pool(
        greylist: Greylist) -> None:
    # Mail from a big provider's server is greylisted as the sender's SPF pool: an
    # administrator asking why mail from 198.51.100.7 waits (show --client) saw nothing,
    # and forgetting its network left those entries waiting.
    server, other = "198.51.100.0/24", "203.0.113.0/24"
    greylist.consult("spf:pool.test", "news@pool.test", "u@corp.test", POLICY, T0,
                     client=server)
    greylist.consult(server, "a@example.net", "u@corp.test", POLICY, T0 + 1)
    greylist.consult("spf:pool.test", "news@pool.test", "v@corp.test", POLICY, T0 + 2,
                     client=other)
    assert [e["network"] for e in greylist.entries(network=server)] == \
        [server, "spf:pool.test"]
    assert len(greylist.entries(network="spf:pool.test")) == 2
    assert greylist.forget(server) == 2
    assert [e["recipient"] for e in greylist.entries()] == ["v@corp.test"]


def test_an_older_stores_waiting_triplets_count_for_their_network_after_the_upgrade(
        tmp_path, monkeypatch) -> None:
    # The greylist.client column came with defenses step 2: a network's triplets stored
    # before it still count towards its bound, and an SPF pool's towards none.
    from portcullis.checks import greylist as module
    from portcullis.store.migrations import COMPONENTS

    monkeypatch.setattr(module, "MAX_WAITING_PER_NETWORK", 2)
    monkeypatch.setitem(COMPONENTS, "defenses", COMPONENTS["defenses"][:1])
    old = open_store(tmp_path)
    for n, source in enumerate([NET, NET, "spf:pool.test"]):
        old.execute("INSERT INTO greylist (network, sender, recipient, first_seen, last_seen)"
                    " VALUES (?, 'a@example.net', ?, ?, ?)", (source, f"u{n}@corp.test",
                                                             T0, T0))
    old.close()
    monkeypatch.undo()
    monkeypatch.setattr(module, "MAX_WAITING_PER_NETWORK", 2)
    greylist = Greylist(open_store(tmp_path))
    greylist.consult(NET, "b@example.net", "w@corp.test", POLICY, T0 + 1)
    assert len(greylist.entries(network=NET)) == 2                 # bound reached: not kept
    greylist.consult("spf:pool.test", "c@pool.test", "w@corp.test", POLICY, T0 + 1,
                     client="198.51.100.0/24")
    assert len(greylist.entries(network="spf:pool.test")) == 2
