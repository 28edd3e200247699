"""Greylisting, as the FAQ's "TempFail" describes it.

PerfectMail tempfails when the sender has never been seen before, or when the message
scored between Tag and Reject; a real MTA resends (usually within minutes), the resend
is matched to the tempfailed attempt and let through, and most spam engines never come
back.  Here:

- ``greylist`` (RCPT): a first attempt for a triplet — client network (IPv4 /24, IPv6
  /64, since big senders retry from a neighbouring address; ``spf:DOMAIN`` for a client
  the sender's SPF record authorises, see ``Sources``), normalised envelope sender,
  recipient (as the user whose subaddress it is: ``recipient_delimiter``) — is answered
  ``451 4.7.1``; a retry at least ``greylist_delay`` seconds and at most
  ``greylist_window`` hours later passes, and the triplet is remembered for
  ``greylist_expiry_days`` after its last use.  After ``greylist_awl_passes`` passes, the
  client network is auto-whitelisted.
- ``greylist_tagged`` (DATA): a message whose triplets have not passed a retry yet
  carries ``Flag.TEMPFAIL_IF_TAGGED``: if it would be tagged, the policy tempfails it
  instead, and the resend after the delay is delivered (tagged).

Never greylisted: relays (their mail is not filtered), white-listed clients and envelope
senders, and known peers (``Flag.PROTECT`` outranks ``TEMPFAIL`` in the policy).  Nor
are recipients that validation is about to refuse (not on the valid-address list, or a
cached negative callout): they get their 550 and count towards harvest detection, and
a dictionary attack fills no greylist.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portcullis.addresses import (
    AddressError,
    IPAddress,
    domain_of,
    normalise_domain,
    parse_ip,
    parse_network,
)
from portcullis.checks import harvest
from portcullis.checks.base import Check, Context, Stage
from portcullis.checks.bwlist import spf_within, whitelisted
from portcullis.directory.settings import DEFAULT_RECIPIENT_DELIMITER, recipient_delimiter
from portcullis.directory.valid_addresses import subaddress_owner
from portcullis.mailauth import spf
from portcullis.mailauth.spf import SpfResult
from portcullis.policy import Flag, Symbol
from portcullis.smtp.recipients import (
    CalloutCache,
    Validity,
    lookup_key,
    validate_before_callout,
)
from portcullis.store import Store

if TYPE_CHECKING:
    from portcullis.services import Services

GREYLISTED = "Greylisted, please try again later"
REFRESH_SECONDS = 3600.0   # last_seen of a known triplet is rewritten at most this often
# Triplets one client network may have waiting for their retry, whatever source they are
# keyed by: beyond this a new one is told to wait but not stored, so guessed recipients
# cannot fill the store's disk (they are stored once earlier ones have passed or expired).
MAX_WAITING_PER_NETWORK = 1000
SPF_PREFIX = "spf:"   # a source that is a sender's SPF-authorised pool, not a network
# Documentation addresses (RFC 5737, RFC 3849): nobody's mail server.  A record that
# authorises them authorises everyone.
NOBODY: dict[int, IPAddress] = {4: ipaddress.IPv4Address("192.0.2.1"),
                                6: ipaddress.IPv6Address("2001:db8::1")}


@dataclass(frozen=True)
class GreylistPolicy:
    delay: float          # seconds before a retry passes
    window: float         # seconds after the first attempt within which the retry must come
    expiry: float         # seconds a passed triplet (or trusted network) lives unused
    awl_passes: int       # passes after which a network is trusted (0: never)
    delimiter: str = DEFAULT_RECIPIENT_DELIMITER   # recipient_delimiter (triplet keys)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> GreylistPolicy:
        return cls(delay=float(settings["greylist_delay"]),
                   window=float(settings["greylist_window"]) * 3600,
                   expiry=float(settings["greylist_expiry_days"]) * 86400,
                   awl_passes=int(settings["greylist_awl_passes"]),
                   delimiter=settings["recipient_delimiter"])


class Outcome(enum.Enum):
    NEW = "new"            # first attempt (or the last one expired): tempfail
    EARLY = "early"        # retried before the delay: tempfail
    PASSED = "passed"      # retried after the delay: through, and remembered
    KNOWN = "known"        # passed before
    TRUSTED = "trusted"    # the client network is auto-whitelisted

    @property
    def defer(self) -> bool:
        return self in (Outcome.NEW, Outcome.EARLY)


NETWORK_PREFIX = {4: 24, 6: 64}   # what a client is greylisted as


def client_network(ip: IPAddress) -> str:
    """The network a client is greylisted as: its /24 (IPv4) or /64 (IPv6)."""
    return str(ipaddress.ip_network(f"{ip}/{NETWORK_PREFIX[ip.version]}", strict=False))


def parse_client(text: str) -> str:
    """What an administrator names a greylisted client by: an address or a network
    within one client network (that network is meant), or ``spf:DOMAIN`` (see
    ``Sources``); AddressError if it is none, or a wider network, for which no entry is
    kept (naming one matched nothing, and looked like a network without entries)."""
    text = text.strip()
    if text[:len(SPF_PREFIX)].lower() == SPF_PREFIX:
        return spf_source(normalise_domain(text[len(SPF_PREFIX):]))
    ip = parse_ip(text)
    if ip is not None:
        return client_network(ip)
    network = parse_network(text)
    if network.prefixlen < NETWORK_PREFIX[network.version]:
        raise AddressError(f"{text!r} is wider than one client network: greylisting keeps"
                           " entries per /24 (IPv4) and /64 (IPv6); name one of those, or"
                           " an address in it")
    return client_network(network.network_address)


def spf_source(domain: str) -> str:
    """The source a domain's SPF-authorised servers are greylisted as."""
    return f"{SPF_PREFIX}{domain_of(domain)}"


def _trustable(source: str) -> bool:
    """Whether a source's passes may earn it the auto-whitelist: a network's may, an SPF
    source's not.  Whoever owns a domain writes its record, and one that authorises
    much of the Internet (while leaving out the addresses ``Sources`` probes) would, once
    a few retries passed, have let a whole botnet mailing as that domain skip
    greylisting; its triplets still pass one by one, each pass counting for the network
    the retry came from."""
    return not source.startswith(SPF_PREFIX)


_BATV = re.compile(r"^(?:prvs|btv1|msprvs1)=[^=]+=", re.IGNORECASE)
_SRS = re.compile(r"^srs[01][=+-]", re.IGNORECASE)


def normalise_sender(address: str) -> str:
    """The envelope sender as greylisting compares it.

    Bounce-address schemes put a fresh token into every message's sender (BATV
    ``prvs=TAG=user@``, VERP ``list-bounces+user=example.com@``, numbered bounces
    ``bounce-12345@``); without normalising, every message of such a sender would be a
    first attempt.  Tags are dropped, the ``+extension`` cut and digit runs folded to '#'.
    """
    address = address.strip().strip("<>").lower()
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    if _SRS.match(local):
        return f"srs@{domain}"
    local = _BATV.sub("", local)
    local = local.split("+", 1)[0]
    local = re.sub(r"\d+", "#", local)
    return f"{local}@{domain}"


def triplet_key(network: str, sender: str, recipient: str, delimiter: str
                ) -> tuple[str, str, str]:
    """A triplet as it is stored: the recipient as the user whose subaddress it is, so a
    sender's mail to dave+news@ and dave+shop@ waits out greylisting once, not each."""
    return network, sender, subaddress_owner(recipient.lower(), delimiter)


def _expired(row: Any, policy: GreylistPolicy, now: float) -> bool:
    """Whether a triplet is forgotten: never retried within the window, or passed and
    unused for the expiry time."""
    if row["passed"] is None:
        return now - row["first_seen"] > policy.window
    return now - row["last_seen"] > policy.expiry


class Greylist:
    """The greylist table: triplets and auto-whitelisted networks (or SPF sources)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def consult(self, network: str, sender: str, recipient: str, policy: GreylistPolicy,
                now: float | None = None, count: bool = True, client: str = ""
                ) -> tuple[Outcome, float]:
        """Record an attempt and say whether it may pass; the number is the seconds left
        to wait (NEW, EARLY) or the seconds waited (PASSED).  ``count`` False looks at a
        triplet again for the same message without counting it as another pass.
        ``network`` is the attempt's source (see ``Sources``); ``client`` the network
        the attempt came from (default: the source), which a first attempt counts
        against for the bound on waiting triplets and a pass towards trusting."""
        now = time.time() if now is None else now
        store = self.store
        key = triplet_key(network, sender, recipient, policy.delimiter)
        client = client or network
        with store.transaction():
            if policy.awl_passes and _trustable(network) \
                    and self._trusted(network, policy, now, count):
                return Outcome.TRUSTED, 0.0
            row = self._triplet(key)
            if row is None or _expired(row, policy, now):
                if row is None and self._waiting(client, policy, now) \
                        >= MAX_WAITING_PER_NETWORK:
                    return Outcome.NEW, policy.delay
                store.execute(
                    "INSERT INTO greylist (network, sender, recipient, first_seen, last_seen,"
                    " passed, attempts, client) VALUES (?, ?, ?, ?, ?, NULL, 1, ?)"
                    " ON CONFLICT (network, sender, recipient) DO UPDATE SET"
                    " first_seen = excluded.first_seen, last_seen = excluded.last_seen,"
                    " passed = NULL, attempts = 1, client = excluded.client",
                    (*key, now, now, client))
                return Outcome.NEW, policy.delay
            if row["passed"] is not None:
                # Not another pass for the auto-whitelist: that counts retries passed, and
                # a triplet's later messages (or the same RCPT repeated) are none.
                if count and now - row["last_seen"] > REFRESH_SECONDS:
                    store.execute("UPDATE greylist SET last_seen = ? WHERE network = ?"
                                  " AND sender = ? AND recipient = ?", (now, *key))
                return Outcome.KNOWN, 0.0
            waited = now - row["first_seen"]
            if waited < policy.delay:
                store.execute("UPDATE greylist SET attempts = attempts + 1, last_seen = ?"
                              " WHERE network = ? AND sender = ? AND recipient = ?",
                              (now, *key))
                return Outcome.EARLY, policy.delay - waited
            store.execute("UPDATE greylist SET passed = ?, last_seen = ?,"
                          " attempts = attempts + 1"
                          " WHERE network = ? AND sender = ? AND recipient = ?",
                          (now, now, *key))
            if _trustable(client):
                self._count_pass(client, now)
            return Outcome.PASSED, waited

    def _waiting(self, client: str, policy: GreylistPolicy, now: float) -> int:
        """Triplets first tried from ``client`` still waiting for their retry (up to the
        bound), under its network or a sender's SPF pool: counted by source, one network
        of a big provider filled the bound for all the pool's senders.  Those whose
        window is over are forgotten already, though the purge has not removed them
        yet: counted, they kept a network's next real mail out of the store."""
        return int(self.store.scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM greylist WHERE client = ?"
            " AND passed IS NULL AND first_seen >= ? LIMIT ?)",
            (client, now - policy.window, MAX_WAITING_PER_NETWORK)))

    def admits(self, network: str, sender: str, recipient: str, policy: GreylistPolicy,
               now: float | None = None) -> bool:
        """Whether ``network`` is trusted or this triplet passed before (a look only:
        nothing is recorded)."""
        now = time.time() if now is None else now
        if policy.awl_passes and self._trusted(network, policy, now, count=False):
            return True
        row = self._triplet(triplet_key(network, sender, recipient, policy.delimiter))
        return row is not None and row["passed"] is not None and not _expired(row, policy, now)

    def _triplet(self, key: tuple[str, str, str]) -> Any:
        return self.store.query_one("SELECT first_seen, last_seen, passed FROM greylist"
                                    " WHERE network = ? AND sender = ? AND recipient = ?", key)

    def withdraw(self, network: str, sender: str, recipient: str, delimiter: str,
                 client: str = "") -> bool:
        """Forget a triplet whose recipient was then refused as unknown, and the pass it
        counted towards trusting its network: retrying guessed addresses is no mail
        server's traffic (postgrey never sees it: Postfix refuses unknown recipients
        before asking), and a harvester that retried them had its network trusted."""
        key = triplet_key(network, sender, recipient, delimiter)
        store = self.store
        with store.transaction():
            row = self._triplet(key)
            if row is None:
                return False
            store.execute("DELETE FROM greylist WHERE network = ? AND sender = ?"
                          " AND recipient = ?", key)
            if row["passed"] is not None:
                store.execute("UPDATE greylist_awl SET passes = passes - 1"
                              " WHERE network = ? AND passes > 0", (client or network,))
        return True

    def _trusted(self, network: str, policy: GreylistPolicy, now: float, count: bool) -> bool:
        row = self.store.query_one("SELECT passes, last_seen FROM greylist_awl"
                                   " WHERE network = ?", (network,))
        if row is None or row["passes"] < policy.awl_passes \
                or now - row["last_seen"] > policy.expiry:
            return False
        if count and now - row["last_seen"] > REFRESH_SECONDS:
            self.store.execute("UPDATE greylist_awl SET last_seen = ? WHERE network = ?",
                               (now, network))
        return True

    def _count_pass(self, network: str, now: float) -> None:
        self.store.execute(
            "INSERT INTO greylist_awl (network, passes, first_seen, last_seen)"
            " VALUES (?, 1, ?, ?) ON CONFLICT (network) DO UPDATE SET"
            " passes = passes + 1, last_seen = excluded.last_seen", (network, now, now))

    def purge(self, policy: GreylistPolicy, now: float | None = None) -> int:
        """Forget attempts never retried in time and passes unused for the expiry time."""
        now = time.time() if now is None else now
        # In batches (Store.purge), not one transaction: a spam run leaves a million.
        store = self.store
        return store.purge("greylist", "passed IS NULL AND first_seen < ?",
                           (now - policy.window,)) + \
            store.purge("greylist", "passed IS NOT NULL AND last_seen < ?",
                        (now - policy.expiry,)) + \
            store.purge("greylist_awl", "last_seen < ?", (now - policy.expiry,))


    def entries(self, limit: int = 100, network: str = "",
                domains: list[str] | None = None) -> list[dict[str, Any]]:
        """The most recently seen triplets (optionally of one source: a client network's
        include those first tried from it under a sender's SPF pool; with ``domains``,
        only those whose recipient is in one of them — a domain administrator's view)."""
        sql = ("SELECT network, sender, recipient, first_seen, last_seen, passed, attempts"
               " FROM greylist WHERE (? = '' OR network = ? OR client = ?)")
        params: list[Any] = [network, network, network]
        if domains is not None:
            if not domains:
                return []
            # Recipients are stored as the client wrote them (bücher.example or its
            # xn-- form): both sides are compared in domain_of's form, the store's SQL
            # function of the same name.
            sql += f" AND domain_of(recipient) IN ({', '.join('?' * len(domains))})"
            params += [domain_of(d) for d in domains]
        return [dict(row) for row in self.store.query(
            sql + " ORDER BY last_seen DESC LIMIT ?", (*params, limit))]

    def trusted_networks(self, policy: GreylistPolicy) -> list[dict[str, Any]]:
        """Networks auto-whitelisted by their passes."""
        if not policy.awl_passes:
            return []
        return [dict(row) for row in self.store.query(
            "SELECT network, passes, first_seen, last_seen FROM greylist_awl"
            " WHERE passes >= ? ORDER BY passes DESC", (policy.awl_passes,))]

    def forget(self, network: str = "") -> int:
        """Forget one source's entries (a client network's as ``entries`` shows them),
        all entries without one."""
        with self.store.transaction():
            if network:
                return self.store.execute("DELETE FROM greylist WHERE network = ?"
                                          " OR client = ?", (network, network)) + \
                    self.store.execute("DELETE FROM greylist_awl WHERE network = ?",
                                       (network,))
            return self.store.execute("DELETE FROM greylist") + \
                self.store.execute("DELETE FROM greylist_awl")


class Sources:
    """What one client's attempts are greylisted as: its network, or (``spf:DOMAIN``) the
    sender's domain when that domain's SPF record authorises the client.

    Big senders (Microsoft 365, Gmail) retry from another server of their pool each time,
    seldom in the same /24: keyed by network alone, their retries were all first attempts
    and a message could wait for hours or bounce.  A retry from any server the domain
    authorises now matches the first attempt, as in SPF-aware greylisters (OpenSMTPD's
    filter-greylist).  A record that authorises everyone (it authorises a documentation
    address too, ``+all``) vouches for no pool, and the network is used.  The network
    still comes first when it is trusted or the triplet passed there, so nothing known
    before is greylisted again, and no SPF lookup is made for it.
    """

    def __init__(self, services: Services, ctx: Context, ip: IPAddress) -> None:
        self.services, self.ctx, self.ip = services, ctx, ip
        self.network = client_network(ip)
        self._spf: str | None = None
        self._asked = False

    async def source(self, greylist: Greylist, sender: str, recipient: str,
                     policy: GreylistPolicy) -> str:
        if greylist.admits(self.network, sender, recipient, policy):
            return self.network
        if not self._asked:
            self._asked = True
            domain = await self._authorising_domain()
            self._spf = spf_source(domain) if domain else None
        return self._spf or self.network

    async def _authorising_domain(self) -> str | None:
        """The sender's domain if its SPF record authorises this client and not everyone;
        None otherwise, or when the answer does not come in time."""
        services, ctx = self.services, self.ctx
        if await spf_within(services, self.ip, ctx.mail_from, ctx.helo) is not SpfResult.PASS:
            return None
        if await spf_within(services, NOBODY[self.ip.version], ctx.mail_from, ctx.helo) \
                in (SpfResult.PASS, None):
            return None     # a record that authorises nobody's address, or no answer
        return spf.sender_identity(ctx.mail_from, ctx.helo)[1]


def refused_as_unknown(services: Services, client_ip: str, mail_from: str, helo: str,
                       recipient: str) -> None:
    """Greylisting's part when a recipient is refused as unknown (``Greylist.withdraw``),
    whichever source the attempt was greylisted as."""
    ip = parse_ip(client_ip)
    store = services.store
    delimiter = recipient_delimiter(store)
    if ip is None or _subaddress_of_known_user(services, recipient, delimiter):
        return
    greylist, sender, network = Greylist(store), normalise_sender(mail_from), client_network(ip)
    for source in (network, spf_source(spf.sender_identity(mail_from, helo)[1])):
        greylist.withdraw(source, sender, recipient, delimiter, client=network)


def _subaddress_of_known_user(services: Services, recipient: str, delimiter: str) -> bool:
    """Whether ``recipient`` is a subaddress of a user known to exist (listed, or a
    callout's answer cached): its triplet is that user's (``triplet_key``), so taking it
    back for a refused tag (a typo, an internal host that takes no subaddresses) had the
    user's own mail from that sender wait out greylisting again.  A guessed user's
    subaddress is taken back as any guess is."""
    key = lookup_key(recipient)
    owner = subaddress_owner(key, delimiter)
    domain = services.snapshots.get().domains.get(domain_of(owner))
    if owner == key or domain is None:
        return False
    validation = validate_before_callout(
        services.store, CalloutCache(services.store, services.config.callout), domain, owner)
    return validation is not None and validation.validity is Validity.VALID


async def _exempt(ctx: Context, services: Services) -> bool:
    """Mail that is never greylisted: unfiltered routes and white-listed senders."""
    if ctx.route is not None and not ctx.route.filtered:
        return True
    return await whitelisted(ctx, services) is not None


class Greylisting(Check):
    name = "greylist"
    stage = Stage.RCPT
    description = "tempfail first-time senders until they retry (client network, sender, rcpt)"

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.snapshot is not None
        settings = ctx.snapshot.settings
        ip = ctx.ip
        if not settings["greylisting"] or ip is None or await _exempt(ctx, self.services):
            return []
        if self._will_be_refused(ctx) or self._client_refused(ctx):
            return []
        greylist, policy = Greylist(self.services.store), GreylistPolicy.from_settings(settings)
        sender = normalise_sender(ctx.mail_from)
        sources = Sources(self.services, ctx, ip)
        source = await sources.source(greylist, sender, ctx.recipient, policy)
        outcome, seconds = greylist.consult(source, sender, ctx.recipient, policy,
                                            client=sources.network)
        if outcome.defer:
            return [Symbol("GREYLISTED", 0.0, GREYLISTED, Flag.TEMPFAIL)]
        if outcome is Outcome.PASSED:
            return [Symbol("GREYLIST_PASSED", 0.0,
                           f"greylisting passed: retried after {seconds:.0f} s")]
        return []

    def _client_refused(self, ctx: Context) -> bool:
        """Whether the client is refused whatever greylisting says: listed on a DNSBL
        (the connect checks' REJECT) or blocked as a harvester.  Its attempts are not
        recorded: they filled the table, and its retries counted as passes towards
        trusting its network (a peer's protection, which overrides those refusals,
        overrides greylisting as well)."""
        assert ctx.snapshot is not None
        return any(s.flag is Flag.REJECT for s in ctx.earlier) or \
            harvest.refusal(self.services.store, ctx.snapshot.settings, ctx.client_ip) \
            is not None

    def _will_be_refused(self, ctx: Context) -> bool:
        """Whether recipient validation (which runs next) refuses this recipient anyway;
        asked the same way the handler asks, without calling out to the internal host."""
        route = ctx.route
        if route is None or route.domain is None:
            return False
        store = self.services.store
        # In the form lists and the callout cache hold (lookup_key), as the handler asks:
        # dave@bücher.example, not found as written, was taken for a refused recipient.
        validation = validate_before_callout(
            store, CalloutCache(store, self.services.config.callout), route.domain,
            lookup_key(ctx.recipient))
        if validation is None:
            return False
        # UNCHECKABLE: a list-only domain with an empty list defers every recipient.
        return validation.validity in (Validity.INVALID, Validity.UNCHECKABLE) or (
            validation.validity is Validity.UNKNOWN and route.domain.reject_non_validated)


class GreylistUncertain(Check):
    name = "greylist_tagged"
    stage = Stage.DATA
    description = "tempfail messages scoring between Tag and Reject until the sender retries"

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.snapshot is not None
        settings = ctx.snapshot.settings
        ip = ctx.ip
        if not settings["greylist_tagged"] or ip is None \
                or await _exempt(ctx, self.services):
            return []
        greylist = Greylist(self.services.store)
        policy = GreylistPolicy.from_settings(settings)
        sources, sender = Sources(self.services, ctx, ip), normalise_sender(ctx.mail_from)
        # Every triplet is looked at (and recorded), so one resend passes them all.
        outcomes = [greylist.consult(await sources.source(greylist, sender, rcpt, policy),
                                     sender, rcpt, policy, count=False,
                                     client=sources.network)[0]
                    for rcpt in ctx.recipients]
        if any(outcome.defer for outcome in outcomes):
            return [Symbol("GREYLIST_UNVERIFIED", 0.0,
                           "Greylisted: uncertain message from a sender that has not "
                           "retried yet, please try again later", Flag.TEMPFAIL_IF_TAGGED)]
        return []
