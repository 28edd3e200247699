"""The machine configuration: one TOML file, strict and with sensible defaults.

Every command finds the file the same way (``--config FILE``, else ``$PORTCULLIS_CONFIG``,
else ``/etc/portcullis/portcullis.toml``).  Only ``[smtp] listen``, ``[web] listen`` and
``[store] dir`` are needed; everything else has a default.  Unknown keys and wrong types are
errors that name the key, so a typo never silently falls back to a default.

Per-domain settings, lists and policy knobs an administrator changes at runtime live in the
store, not here; ``[policy]`` only seeds them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from portcullis.addresses import AddressError, ascii_domain, check_address, is_host_name
from portcullis.numbers import NumberError, parse_number
from portcullis.ownaddresses import is_interface_address
from portcullis.printable import printable
from portcullis.store import StoreError, check_url

DEFAULT_PATH = Path("/etc/portcullis/portcullis.toml")
ENV_VAR = "PORTCULLIS_CONFIG"

# A score may be negative (reputation's bonuses are); every other number in the file is
# a count, a size, a port or a duration, which never is.
Score = typing.NewType("Score", float)
# TOML's integers are 64-bit (the store's too); Python's TOML reader takes any size.
LARGEST_INTEGER = 2**63 - 1


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file and key."""


def _check_above_zero(section: object, *names: str) -> None:
    """Timeouts and limits that no key says 0 turns off are above 0: a timeout of 0 s
    timed out every session, delivery, lookup or scan at once, a limit of 0 refused every
    client, recipient or transaction (all mail deferred)."""
    for name in names:
        value = getattr(section, name)
        if value <= 0:
            raise ValueError(f"{name} must be above 0, not {value:g}")


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _host(text: str) -> str:
    """An IP address or a host name (IDN to its ASCII form), else ValueError.

    A typo here (``mail..example``, a space, ``10.0.0.300``) would otherwise be found only
    when every message to the host is deferred.
    """
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        name = _host_name(text)
    except ValueError:
        raise ValueError("is not a host name or IP address") from None
    # The resolver reads 0x7f000001 or 0x7f.0x1 as inet_aton does (127.0.0.1), never as a
    # name: taken as one, it hid the address from every check of it (a domain
    # administrator's mail host aimed at the appliance itself).
    address = ipv4_notation(name)
    if address is None:
        return name
    raise ValueError(f"is the IPv4 address {address} in another notation: write {address}")


def _host_name(text: str) -> str:
    """A host name (IDN to its ASCII form, no trailing dot; not all digits at the end,
    which is an address), else ValueError."""
    try:
        name = ascii_domain(text.rstrip("."))
    except UnicodeError:
        raise ValueError("is not a host name") from None
    if not is_host_name(name) or name.rpartition(".")[2].isdigit():
        raise ValueError("is not a host name")
    return name


def ipv4_notation(name: str) -> str | None:
    """The IPv4 address getaddrinfo reads ``name`` as without looking it up, by
    inet_aton's rules (0x7f000001, 0x7f.0x1, 2130706433, 0177.0.0.1 are all 127.0.0.1);
    None for a name it would resolve.  (A plain dotted quad is one too.)"""
    try:
        return socket.inet_ntoa(socket.inet_aton(name))
    except (OSError, ValueError):       # ValueError: a NUL in the text
        return None


def parse_hostport(text: str, default_port: int | None = None) -> HostPort:
    """Parse ``host:port``, ``[host]:port`` or (with a default port) a bare host.

    The host is an IP address (IPv6 bracketed when a port follows) or a host name.
    """
    hostport = split_hostport(text, default_port)
    try:
        return HostPort(_host(hostport.host), hostport.port)
    except ValueError as exc:
        raise ValueError(f"{text.strip()!r}: {hostport.host!r} {exc}") from None


def split_hostport(text: str, default_port: int | None = None) -> HostPort:
    """Only the syntax of :func:`parse_hostport`, for values it has checked before.

    A stored mail host is read with this, so a host accepted by an older release still
    reads rather than failing every lookup: the domain page says it needs correcting, and
    the next hop defers mail to one written as an IPv4 address in another notation
    (``smtp.nexthop.hop_problem``) instead of letting getaddrinfo read it as one.
    """
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not a valid host:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise ValueError(f"{text!r} needs a port (host:port)")
        port = default_port
    else:
        if not port_text.isascii() or not port_text.isdigit():
            raise ValueError(f"{text!r}: port must be a number")
        port = int(port_text)
    if not host or not 0 < port < 65536:
        raise ValueError(f"{text!r} is not a valid host:port")
    return HostPort(host, port)


MIN_LINE_LENGTH = 1000
MIN_HEADER_SIZE = 64 * 1024
# EHLO counts as such a command: a session's EHLO, its EHLO again after STARTTLS, an RSET
# and a NOOP before its first message must pass.
MIN_JUNK_COMMANDS = 5
# Mail through a large provider's and an organisation's own relays carries a dozen
# Received: fields or more; a smaller [smtp] max_hops bounced it (554) as a loop.  RFC
# 5321 6.3 asks for a threshold of normally at least 100, Postfix's is 50.
MIN_HOPS = 20


@dataclass(frozen=True)
class SmtpConfig:
    listen: tuple[HostPort, ...]
    hostname: str = field(default_factory=socket.getfqdn)  # banner, HELO, trace headers
    max_sessions: int = 200            # beyond this a new client gets 421 and is closed
    max_sessions_per_ip: int = 20      # one busy or hostile MTA cannot take every slot
    max_message_size: int = 25 * 1024 * 1024  # advertised with SIZE; larger gets 552
    max_recipients: int = 100          # per transaction; more get 452 (client retries)
    # Replies of 5xx on one connection (recipients refused for good, commands refused
    # for their syntax or order), since it last delivered a message, before the next
    # MAIL, RCPT or DATA gets 421 and the connection is closed (Postfix's
    # smtpd_hard_error_limit); 4xx replies count towards max_deferrals instead.
    max_errors: int = 20
    # Replies of 4xx on one connection (greylisting, a harvest block, the internal host's
    # 4xx, 452 "send it in a new transaction") since it last delivered a message, before
    # the next MAIL, RCPT or DATA gets 421 and the connection is closed: each resets the
    # idle timeout, so without a bound a client could go on for ever.  Postfix counts them
    # towards smtpd_hard_error_limit (20); here the limit is higher, as a legitimate
    # transaction greylisted gets one per recipient: keep it at least max_recipients.
    # RCPTs past max_recipients (452) are counted towards max_errors instead, after the
    # first 1000 of a transaction.
    max_deferrals: int = 200
    # Commands that carry no mail (NOOP, RSET, VRFY, EXPN, HELP, HELO/EHLO, AUTH) since a
    # message was last delivered, before the connection gets 421 and is closed: each
    # resets the idle timeout, so without a bound one client holds its slot for ever
    # (Postfix's smtpd_junk_command_limit).
    max_junk_commands: int = 100
    max_line_length: int = 8192        # longer DATA lines get 500 (RFC 5321 says 1000)
    # A larger header section gets 552 (Exim's header_maxsize): real mail has tens of KB,
    # and a million short header lines cost the checks seconds and hundreds of MB.
    max_header_size: int = 1024 * 1024
    # More lines than this get 552: each costs the MIME parser some 100 bytes while it
    # reads (25 MB of empty lines, over 2 GB); real mail is far below (25 MB of base64
    # is 330,000 lines).  0: no limit.
    max_message_lines: int = 1_000_000
    # A message with this many Received: header fields, the gateway's own counted, gets
    # 554 5.4.6: it is going round in a mail loop (Postfix's hopcount_limit).  0: off.
    max_hops: int = 50
    # Idle seconds allowed before a command, and between reads of a message, before the
    # client gets 421 4.4.2 and is closed (Postfix's smtpd_timeout).
    timeout: float = 300.0
    # Bytes a second a client must average while it sends a message, after a grace of
    # its first DATA_RATE_GRACE seconds (smtp/server.py); one that falls behind gets 421
    # 4.4.2, or a byte every few minutes would hold a slot for hours (Postfix's
    # smtpd_min_data_rate).  0: off, only ``timeout`` between reads applies.
    min_data_rate: int = 500
    workers: int = 1                   # processes sharing the listen socket (SO_REUSEPORT)
    # STARTTLS for senders that want it (PEM files; both or neither). Never required:
    # an MX must accept plain SMTP from the Internet.
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    # Where RCPT TO:<postmaster> without a domain (RFC 5321 4.5.1: it MUST be accepted)
    # goes: an address at a protected domain.  Empty: postmaster@ the protected domain
    # the hostname lies in (mx.example.com: example.com), as Postfix appends $myorigin.
    postmaster: str = ""
    # Postfix's postscreen pregreet test: on a client's first connection in a day the
    # greeting's first line (220-) comes at once and its last (220 ) this many seconds
    # later (2 catches most); a client that talks meanwhile did not wait for the
    # greeting, as spambots do not.  Real MTAs read to the last line; one that passed is
    # not kept waiting again (smtp/server.py, PREGREET_PASS_TTL).  0: off, as Postfix
    # has postscreen off until it is set up (a client that reads only a greeting's first
    # line, as some monitoring probes do, would be refused).
    pregreet_wait: float = 0.0
    # What a client that talked before the greeting gets: "enforce" (550 5.5.1 to each
    # RCPT, postscreen's default), "drop" (521 5.5.1 and closed) or "ignore" (logged).
    pregreet_action: str = "enforce"

    def __post_init__(self) -> None:
        # Below these, ordinary mail was refused for good (500 or 552: the sender bounces
        # it): RFC 5321 4.5.3.1.6 has a server take lines of 1000 octets, and headers
        # run to tens of KB (Postfix keeps 100 KB).
        if self.max_line_length < MIN_LINE_LENGTH:
            raise ValueError(f"max_line_length must be at least {MIN_LINE_LENGTH} (RFC 5321),"
                             f" not {self.max_line_length}")
        if self.max_header_size < MIN_HEADER_SIZE:
            raise ValueError(f"max_header_size must be at least {MIN_HEADER_SIZE},"
                             f" not {self.max_header_size}")
        _check_above_zero(self, "timeout", "max_sessions", "max_sessions_per_ip",
                          "max_recipients", "max_errors", "max_deferrals")
        if 0 < self.max_hops < MIN_HOPS:
            raise ValueError(f"max_hops must be 0 (off) or at least {MIN_HOPS},"
                             f" not {self.max_hops}")
        if self.max_junk_commands < MIN_JUNK_COMMANDS:
            raise ValueError(f"max_junk_commands must be at least {MIN_JUNK_COMMANDS},"
                             f" not {self.max_junk_commands}")
        # Our name in the banner, in EHLO to every next hop and in each Received header:
        # a space or a line break (TOML has escapes) broke all three.
        try:
            object.__setattr__(self, "hostname", _host_name(self.hostname))
        except ValueError as exc:
            raise ValueError(f"hostname: {self.hostname!r} {exc}") from None
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("tls_certificate and tls_key go together")
        if self.pregreet_action not in ("enforce", "drop", "ignore"):
            raise ValueError(f"pregreet_action must be \"enforce\", \"drop\" or \"ignore\","
                             f" not {self.pregreet_action!r}")
        if not 0 <= self.pregreet_wait < self.timeout:
            raise ValueError("pregreet_wait must be at least 0 and less than timeout")
        if self.postmaster:
            try:
                object.__setattr__(self, "postmaster", check_address(self.postmaster))
            except AddressError as exc:
                raise ValueError(f"postmaster: {exc}") from None


@dataclass(frozen=True)
class WebConfig:
    listen: tuple[HostPort, ...]
    threads: int = 8


@dataclass(frozen=True)
class StoreConfig:
    dir: Path
    url: str = ""                      # empty: SQLite in dir; later postgresql://...

    def __post_init__(self) -> None:
        try:
            check_url(self.url)
        except StoreError as exc:
            raise ValueError(f"url: {exc}") from None

    @property
    def archive_dir(self) -> Path:
        return self.dir / "archive"


# A sending client's own timeouts (RFC 5321 4.5.3.2): the gateway is a before-queue
# filter, so the client waits while it talks to the next hop, and must hear a 4xx before
# it gives up (else it retries a recipient the gateway is still working on, or a message
# the next hop may already have: a duplicate).
CLIENT_RCPT_TIMEOUT = 300.0            # RCPT: 5 minutes
CLIENT_DATA_END_TIMEOUT = 600.0        # the reply after the final dot: 10 minutes
# The most [delivery] may give the next hop while a client waits, a minute short of the
# client's timeout for the gateway's own work (RCPT checks, an RSET) and clock skew.
RCPT_DEADLINE_LIMIT = CLIENT_RCPT_TIMEOUT - 60.0
REPLY_DEADLINE_LIMIT = CLIENT_DATA_END_TIMEOUT - 60.0


@dataclass(frozen=True)
class DeliveryConfig:
    connect_timeout: float = 30.0      # reaching the internal host and its greeting
    command_timeout: float = 60.0      # each command's reply (EHLO, MAIL, RCPT, DATA's 354)
    # The internal host's reply to the final dot (RFC 5321's 600 s, for Release, where
    # nobody waits); while a client waits, ``reply_deadline`` cuts it shorter.
    data_timeout: float = 600.0
    # All the waits on the internal host for one client RCPT together (connection,
    # greeting, EHLO, MAIL, RCPT, a reconnect), as Postfix's smtpd_proxy_timeout (100 s)
    # bounds a before-queue proxy's step; past it the client gets 451 4.4.1.  At most
    # RCPT_DEADLINE_LIMIT: the client waits CLIENT_RCPT_TIMEOUT in all.
    recipient_deadline: float = 100.0
    # Seconds from the client's final dot to the gateway's reply: the checks (ClamAV's
    # scan_timeout, 120 s, is the longest), the archive and the whole DATA exchange with
    # the internal host (354, the message, its reply).  When the internal host has not
    # answered by then the client gets 451 4.4.1 and sends the message again: a
    # duplicate only if that host delivers it after all, the risk Postfix's
    # smtpd_proxy_timeout takes.  Else the client would give up first (RFC 5321: 10
    # minutes) and its retry be a duplicate of a message delivered meanwhile.  At most
    # REPLY_DEADLINE_LIMIT, a minute short of CLIENT_DATA_END_TIMEOUT; the default
    # leaves two.
    reply_deadline: float = 480.0
    # After a next hop did not answer in time (no connection, no greeting), its further
    # recipients get 451 at once for this long rather than each wait connect_timeout
    # again (Postfix remembers a dead host the same way).  0: off.
    host_down_seconds: float = 30.0

    def __post_init__(self) -> None:
        _check_above_zero(self, "connect_timeout", "command_timeout", "data_timeout",
                          "recipient_deadline", "reply_deadline")
        if not self.connect_timeout <= self.recipient_deadline <= RCPT_DEADLINE_LIMIT:
            raise ValueError("connect_timeout <= recipient_deadline <="
                             f" {RCPT_DEADLINE_LIMIT:g} must hold (a client waits"
                             f" {CLIENT_RCPT_TIMEOUT:g} s for its RCPT reply)")
        if self.reply_deadline > REPLY_DEADLINE_LIMIT:
            raise ValueError(f"reply_deadline must be at most {REPLY_DEADLINE_LIMIT:g} (a"
                             f" client waits {CLIENT_DATA_END_TIMEOUT:g} s for the reply to"
                             " its message)")


@dataclass(frozen=True)
class OutboundConfig:
    # The local Postfix that queues and delivers mail from relays to the Internet.
    relay_host: HostPort = HostPort("127.0.0.1", 10025)

    def __post_init__(self) -> None:
        # As for a domain's mail host: an interface's address is the gateway's own port
        # 25 (outbound mail would loop through it); loopback or localhost reaches the
        # appliance's own Postfix by choice.  (A name, or an address the machine gains
        # later, is checked when connecting: smtp/nexthop.py defers with 451 4.4.6.)
        if is_interface_address(self.relay_host.host):
            raise ValueError(f"relay_host: {self.relay_host.host} is an address of this"
                             " appliance itself; write 127.0.0.1 or localhost for its own"
                             " Postfix, or the address of another relay")


@dataclass(frozen=True)
class CalloutConfig:
    positive_ttl: float = 7 * 86400.0  # a valid recipient stays valid for a week
    negative_ttl: float = 3 * 3600.0   # an unknown one is asked again after three hours


@dataclass(frozen=True)
class PolicyConfig:
    """Initial values of the runtime policy settings (the store's copy wins once set)."""

    tag_threshold: Score = Score(5.0)
    reject_threshold: Score = Score(12.0)
    tag_phrase: str = "[SPAM?]"
    reject_text: str = ""              # appended to every reject reply, e.g. a help-desk hint
    archive_retention_days: int = 7


@dataclass(frozen=True)
class DnsConfig:
    nameservers: tuple[str, ...] = ()  # IP addresses; empty: /etc/resolv.conf
    port: int = 53
    timeout: float = 3.0

    def __post_init__(self) -> None:
        # Found here, not at mail time: a port past 65535 raised in every check that asks
        # DNS, a name among the servers failed every lookup and a timeout of 0 timed each
        # out (DNSBLs fail open: spam taken unchecked).
        for server in self.nameservers:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise ValueError(f"nameservers: {server!r} is not an IP address") from None
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be from 1 to 65535, not {self.port}")
        _check_above_zero(self, "timeout")


@dataclass(frozen=True)
class DefensesConfig:
    """Initial values of the defenses' runtime settings (the store's copy wins once set);
    see ``portcullis settings show`` for what each means."""

    # One entry per zone: "ZONE [name=LABEL] [CODES=reject|SCORE ...]" (checks/dnsbl.py).
    dnsbl_zones: tuple[str, ...] = (
        "zen.spamhaus.org name=spamhaus.org 127.0.0.2-127.0.0.11=reject",)
    uribl_zones: tuple[str, ...] = (
        "dbl.spamhaus.org name=dbl.spamhaus.org 127.0.1.2-127.0.1.99=6",)
    greylisting: bool = True           # tempfail first-time senders (client /24, sender, rcpt)
    greylist_tagged: bool = True       # tempfail unverified messages scoring Tag..Reject
    greylist_delay: int = 120          # seconds before a retry is let through
    greylist_window: int = 48          # hours a retry is waited for
    greylist_awl_passes: int = 5       # passes after which a client network skips greylisting
    greylist_expiry_days: int = 35     # days an unused passed entry is remembered
    harvest_threshold: int = 15        # invalid recipients per client before blocking (0: off)
    harvest_window: int = 15           # minutes in which they are counted
    harvest_block: int = 60            # minutes a harvesting client is refused
    harvest_action: str = "tempfail"   # tempfail (451) or reject (550)
    sender_authentication: bool = True  # SPF, DKIM and DMARC checks


@dataclass(frozen=True)
class ClamavConfig:
    """How the gateway reaches clamd (``portcullis.antivirus``) and what it does when it cannot."""

    enabled: bool = True               # scan every filtered message with ClamAV
    address: str = "/run/clamav/clamd.ctl"  # clamd's local socket path, or host:port for TCP
    connect_timeout: float = 2.0       # reaching clamd; beyond this clamd counts as down
    scan_timeout: float = 120.0        # clamd's verdict on one message (all its scans)
    chunk_size: int = 64 * 1024        # INSTREAM chunk size (clamd's StreamMaxLength caps the sum)
    max_concurrent_scans: int = 8      # per gateway worker; more wait their turn (clamd MaxThreads)
    # "tempfail": a message that could not be scanned gets 451 and the sender retries (nothing
    # lost, nothing unscanned delivered).  "accept": it is delivered with the symbol
    # CLAMAV_UNAVAILABLE and a warning in the log.
    on_failure: str = "tempfail"
    database_dir: Path = Path("/var/lib/clamav")  # read for the status page (versions, dates)
    # Writing this file asks freshclam to check for new signatures now (a systemd path unit
    # laid down by the clamav role wakes it); empty: no freshclam on this machine.
    update_request: str = "/run/portcullis-clamav/update-request"

    def __post_init__(self) -> None:
        if self.on_failure not in ("tempfail", "accept"):
            raise ValueError(f"on_failure must be \"tempfail\" or \"accept\", "
                             f"not {self.on_failure!r}")
        if self.chunk_size < 1024 or self.max_concurrent_scans < 1:
            raise ValueError("chunk_size must be at least 1024 and max_concurrent_scans 1")
        # 0 s: no message scanned, so all mail deferred, or with on_failure = "accept"
        # all of it delivered unscanned.
        _check_above_zero(self, "connect_timeout", "scan_timeout")


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True)
class LogConfig:
    file: Path | None = None           # default: <store dir>/portcullis.log
    level: str = "info"                # one of LOG_LEVELS

    def __post_init__(self) -> None:
        # Else the logging module's own ValueError stopped every service at start.
        if self.level.lower() not in LOG_LEVELS:
            raise ValueError(f"level must be one of {', '.join(LOG_LEVELS)},"
                             f" not {self.level!r}")


@dataclass(frozen=True)
class BayesConfig:
    """The token classifier, its training addresses and auto-learning."""

    enabled: bool = True
    min_trained: int = 20              # messages of each class before its opinion counts
    training_host: str = ""            # host part of spam@/ham@; empty: [smtp] hostname
    spam_mailbox: str = "spam"         # forward unwanted mail to spam@<training_host>
    ham_mailbox: str = "ham"           # forward wanted mail to ham@<training_host>
    autolearn: bool = True             # learn from confident verdicts (bayes/autolearn.py)
    # Both judge a message's own evidence: Bayes and what is known of the sender (peer,
    # one-way and MTA reputation, the lists) aside, though reputation may hold learning back.
    autolearn_spam_score: Score = Score(12.0)  # learn a score reject as spam at or above this
    autolearn_ham_score: Score = Score(0.0)   # learn a delivered accept as ham below this
    # Expiry forgets only what the auto-learner alone taught: a person's training
    # (spam@/ham@, `portcullis train`) stays, and goes last when max_tokens is reached.
    token_days: int = 180              # tokens not learnt for this long are forgotten
    hapax_days: int = 30               # tokens seen once are forgotten sooner
    max_tokens: int = 2_000_000        # beyond this the auto-learner's least recent go,
                                       # then a person's least recently taught

    def __post_init__(self) -> None:
        if self.training_host:
            try:
                object.__setattr__(self, "training_host", _host_name(self.training_host))
            except ValueError as exc:
                raise ValueError(f"training_host: {self.training_host!r} {exc}") from None
        # The gateway takes mail to <mailbox>@<training host> itself: the same mailbox
        # twice had every forward learnt as spam (ham as spam: wanted mail rejected), and
        # postmaster's mail must reach a person (RFC 5321 4.5.1), never be learnt.
        for key in ("spam_mailbox", "ham_mailbox"):
            local = getattr(self, key)
            try:                # the local part's rules; the domain only stands in
                check_address(f"{local}@example.com")
            except AddressError:
                raise ValueError(f"{key}: {local!r} is not the local part of an address"
                                 " (spam in spam@host)") from None
            if local.lower() == "postmaster":
                raise ValueError(f"{key}: postmaster's mail must reach a person")
        if self.spam_mailbox.lower() == self.ham_mailbox.lower():
            raise ValueError(f"spam_mailbox and ham_mailbox must differ, not both"
                             f" {self.spam_mailbox!r}")


@dataclass(frozen=True)
class ReputationConfig:
    """Peer relationships, one-way relationships and MTA reputation."""

    peer_protect_exchanges: int = 3    # exchanges after which a peer is never rejected
    peer_days: int = 365               # a relationship unused this long is forgotten
    one_way_interval: float = 6 * 3600.0  # good mail counts at most once per interval
    one_way_min_messages: int = 3      # good messages before a one-way bonus is given
    one_way_days: int = 90             # a one-way relationship unused this long is forgotten
    mta_days: int = 30                 # MTA counters decay by half over this many days


@dataclass(frozen=True)
class FirewallConfig:
    """Site values of the nftables ruleset and the tarpit (``portcullis firewall``)."""

    ruleset: Path = Path("/etc/portcullis/firewall/portcullis.nft")  # the reviewable ruleset
    # Networks (IPv4 and IPv6) allowed to reach SSH; the vendor's three class C by default.
    vendor_netblocks: tuple[str, ...] = ("207.219.44.0/24", "209.89.117.0/24",
                                         "204.225.114.0/24")
    ssh_rate: int = 3                  # new SSH connections a minute per source; one more blocks
    ssh_block_minutes: float = 10.0    # how long an exhausting source stays blocked from SSH
    scan_log_rate: int = 6             # scan attempts logged a minute per source (nflog)
    scan_log_group: int = 7            # nflog group the ruleset logs scan attempts to
    scanner_minutes: float = 60.0      # how long a scanning source is sent to the tarpit
    drop_black_list: bool = False      # also drop the IP black list's sources at the firewall
    syn_proxy: bool = True             # answer IPv4 SYNs to 25 and 80 with SYN cookies (floods)
    tarpit_port: int = 7999            # where `portcullis tarpit` listens (redirect target)
    tarpit_per_source: int = 4         # connections one source may hold in the tarpit
    tarpit_max_connections: int = 2048  # connections the tarpit holds in all
    tarpit_trickle_seconds: float = 10.0  # one byte to each held client this often
    tarpit_hold_minutes: float = 60.0  # a held connection is closed after this long
    control_socket: Path = Path("/run/portcullis-firewall/control.sock")  # for the web UI
    control_group: str = "portcullis-web"  # group allowed to use the control socket


@dataclass(frozen=True)
class Config:
    path: Path
    smtp: SmtpConfig
    web: WebConfig
    store: StoreConfig
    delivery: DeliveryConfig = DeliveryConfig()
    outbound: OutboundConfig = OutboundConfig()
    callout: CalloutConfig = CalloutConfig()
    policy: PolicyConfig = PolicyConfig()
    dns: DnsConfig = DnsConfig()
    log: LogConfig = LogConfig()
    defenses: DefensesConfig = DefensesConfig()
    firewall: FirewallConfig = FirewallConfig()
    clamav: ClamavConfig = ClamavConfig()
    bayes: BayesConfig = BayesConfig()
    reputation: ReputationConfig = ReputationConfig()

    @property
    def log_file(self) -> Path:
        return self.log.file or self.store.dir / "portcullis.log"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the configuration is read from: flag, then environment, then the default."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return DEFAULT_PATH


def read_toml(path: Path) -> dict[str, typing.Any]:
    """A TOML file's tables; ConfigError says plainly why it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:      # the reader recurses once per nested array or table
        raise ConfigError(
            f"{path}: not valid TOML: arrays or tables nested too deeply") from None


def load(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the configuration file; raise ConfigError naming the bad key."""
    path = config_path(explicit)
    return parse(read_toml(path), path)


def parse(raw: dict[str, typing.Any], path: Path = Path("<config>")) -> Config:
    sections: dict[str, typing.Any] = {}
    hints = typing.get_type_hints(Config)
    for name, value in raw.items():
        if name not in hints or name == "path":
            raise ConfigError(f"{path}: [{name}]: unknown section")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {name}: must be a [{name}] table")
        sections[name] = _build(hints[name], value, path, name)
    for required in ("smtp", "web", "store"):
        if required not in sections:
            raise ConfigError(f"{path}: [{required}]: section is required")
    for service in ("smtp", "web"):
        # listen = [] started a service that served nothing and said nothing.
        if not sections[service].listen:
            raise ConfigError(f"{path}: [{service}] listen: at least one address is needed")
    config = Config(path=path, **sections)
    _check_settings(config, path)
    _check_clamd_address(config, path)
    _check_reply_budget(config, path)
    return config


def _check_reply_budget(config: Config, path: Path) -> None:
    """The client's reply after its final dot comes within [delivery] reply_deadline;
    a check allowed longer than that would have every message it holds up deferred
    (451) rather than judged, so the slowest check's timeout must fit inside it."""
    if config.clamav.enabled and config.clamav.scan_timeout >= config.delivery.reply_deadline:
        raise ConfigError(f"{path}: [clamav] scan_timeout ({config.clamav.scan_timeout:g} s)"
                          " must be shorter than [delivery] reply_deadline"
                          f" ({config.delivery.reply_deadline:g} s)")


def _check_settings(config: Config, path: Path) -> None:
    """[policy] and [defenses] seed the runtime settings: the same bounds and formats
    hold here (an archive_retention_days of 0 had the archive emptied every hour)."""
    # The settings table owns them; imported here only to name the bad key.
    from portcullis.directory.settings import SETTINGS, SettingError, check_together

    seeds: dict[str, typing.Any] = {}
    for section in ("policy", "defenses"):
        values = getattr(config, section)
        for key in dataclasses.fields(values):
            try:
                seeds[key.name] = SETTINGS[key.name].coerce(getattr(values, key.name))
            except SettingError as exc:
                raise ConfigError(f"{path}: [{section}] {exc}") from None
    try:
        check_together(seeds)
    except SettingError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _check_clamd_address(config: Config, path: Path) -> None:
    """[clamav] address, read as the client reads it (a socket path, or host:port): each
    gateway worker reads it as it starts, and one it could not read ("", a port past
    65535) had every worker die at start, over and over, while the supervisor answered
    421 to all mail."""
    # The client reads host:port with this module's parse_hostport: imported here only.
    from portcullis.antivirus.clamd import ClamdClient

    try:
        ClamdClient(config.clamav.address)
    except ValueError as exc:
        raise ConfigError(f"{path}: [clamav] address: {exc}") from None


def parse_section(cls: type, table: dict[str, typing.Any], path: Path,
                  section: str) -> typing.Any:
    """Build one section dataclass from a TOML table with the same strict rules as here.

    For programs with a file of their own (the update agent's ``agent.toml``), so every
    configuration file is checked the same way.
    """
    return _build(cls, table, path, section)


def _build(cls: type, table: dict[str, typing.Any], path: Path, section: str) -> typing.Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, typing.Any] = {}
    for key, value in table.items():
        where = f"{path}: [{section}] {key}"
        if key not in fields:
            raise ConfigError(f"{where}: unknown key")
        try:
            values[key] = _convert(hints[key], value, key)
        except NumberError as exc:      # names the key itself
            raise ConfigError(f"{path}: [{section}] {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if name not in values and no_default:
            raise ConfigError(f"{path}: [{section}] {name}: required key is missing")
    try:
        return cls(**values)
    except ValueError as exc:  # a section's own __post_init__ validation
        raise ConfigError(f"{path}: [{section}]: {exc}") from None


def _convert(hint: typing.Any, value: typing.Any, key: str) -> typing.Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(options[0], value, key)
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        items = value if isinstance(value, list) else [value]
        return tuple(_convert(item, v, key) for v in items)
    if hint is HostPort:
        if not isinstance(value, str):
            raise TypeError(f"expected \"host:port\", got {value!r}")
        return parse_hostport(value)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise TypeError(f"expected a path, got {value!r}")
        return Path(_one_line(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return value
    if hint is int or hint is float or hint is Score:
        return _number(hint, value, key)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {value!r}")
        return _one_line(value)
    raise TypeError(f"unsupported setting type {hint!r}")


def _one_line(text: str) -> str:
    """Every text in the file is one line of shown characters: TOML's escapes let a NUL,
    a line break or a terminal control into a path, an address or a name, where it
    stopped the service at start (a NUL in a path) or broke what carried it."""
    if printable(text) != text:
        raise ValueError(f"{text!r} holds a control character")
    return text


def _number(hint: type, value: typing.Any, key: str) -> int | float:
    """A TOML number, read as any number an administrator gives (``parse_number``:
    finite, as TOML has nan and inf and a nan threshold matches nothing; an integer
    too large for a float refused, not a crash), never from text, never negative but
    for a score (a negative timeout timed every session and delivery out at once)."""
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an integer, got {value!r}")
        return parse_number(value, int, name=key, minimum=0, maximum=LARGEST_INTEGER)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return parse_number(value, float, name=key, minimum=None if hint is Score else 0)
