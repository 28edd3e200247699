"""Mail addresses and network entries: parsing, normalising, and the FAQ's cleaning rules."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Container, Iterable
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr

import idna

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Deliberately conservative: what a valid-address list or a domain entry may hold.  A
# local part beyond ASCII (RFC 6531: jöran@, a mailbox an SMTPUTF8 sender may write to)
# is atext plus printable characters from U+00A0 up, never a control, white space or a
# line separator.
_LOCAL_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\u00a0-\U0010ffff-]+")
# A label of a host name (RFC 1123): letters, digits and inner hyphens, at most 63.
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


# The plain forms of an address in a header, which the email package reads the same way in
# every Python release (its strict reading, CVE-2023-27043, differs on odd forms only):
# ``local@domain``, ``<local@domain>`` or ``Display Name <local@domain>`` with dot-atoms, a
# display name of plain words (folding white space between them), nothing else.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# Matched against an element with its folding space stripped: a blank run on each side of
# an optional part made the match quadratic in the run (a 128 KB From header took 22 s).
_PLAIN_ADDRESS = re.compile(
    rf"(?:(?P<name>[^\x00-\x20\x7f()<>@,:;\"\[\]\\]+(?:[ \t\r\n]+"
    rf"[^\x00-\x20\x7f()<>@,:;\"\[\]\\]+)*)?[ \t\r\n]*<(?P<angled>{_ATOM}(?:\.{_ATOM})*"
    rf"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>|(?P<bare>{_ATOM}(?:\.{_ATOM})*"
    rf"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*))")
_BLANKS = " \t\r\n"
_FOLDING_SPACE = re.compile(r"[ \t\r\n]+")


class AddressError(ValueError):
    """An address or list entry that cannot be used; the message says why."""


def domain_of(address: str) -> str:
    """The address's domain, lower-cased and in ASCII (an SMTPUTF8 sender may write
    bücher.example, which is protected, archived and administered as
    xn--bcher-kva.example); as written when it cannot be converted."""
    domain = address.rpartition("@")[2].lower()
    if domain.isascii():
        return domain
    try:
        return ascii_domain(domain)
    except UnicodeError:
        return domain


def normalise_address(address: str) -> str:
    """Lower-case the domain (and the local part: mail servers compare it case-blind)."""
    return address.strip().strip("<>").lower()


def ascii_domain(name: str) -> str:
    """``name`` lower-cased, its U-labels as A-labels: IDNA 2008 with UTS 46 mapping,
    non-transitional, as registries and browsers convert (Python's own "idna" codec is
    IDNA 2003, which makes faß.de fass.de, another domain).  UnicodeError if it cannot."""
    if name.isascii():
        return name.lower()
    return idna.encode(name, uts46=True, transitional=False).decode("ascii").lower()


def ascii_address(address: str) -> str:
    """``address`` with its domain in A-labels, the same domain (RFC 5890), as the gateway
    passes it on; as written when the domain cannot be converted.  A local part beyond
    ASCII stays: only SMTPUTF8 can carry it."""
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    try:
        return f"{local}@{ascii_domain(domain)}" if at else address
    except UnicodeError:
        return address


def address_key(address: str) -> str:
    """An address in the one form lists and relationships compare: lower-cased (as mail
    servers compare local parts), its domain in A-labels and without a trailing dot
    (example.com. is example.com written absolute, RFC 1034 3.1), so
    ``Boss@BÜCHER.example.`` is ``boss@xn--bcher-kva.example``, the same mailbox.  A
    user who wrote to freund@bücher.example gets the reply from
    freund@xn--bcher-kva.example.: one correspondent, not a stranger."""
    local, at, domain = address.strip().lower().rpartition("@")
    return ascii_address(f"{local}@{domain.rstrip('.')}") if at else domain


_NUMBER = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")


def ends_in_number(host: str) -> bool:
    """Whether a link's host ends in a number (its last label, the root's dot aside, is
    decimal or 0x hex): a browser takes it for an IPv4 address, never a domain name
    (WHATWG URL), as in http://3232235777/ or http://0x7f.1/."""
    return _NUMBER.fullmatch(host.rstrip(".").rpartition(".")[2]) is not None


def is_host_name(name: str) -> bool:
    """Whether a lower-case ASCII name is a host name: at most 253 characters of labels
    that RFC 1123 allows."""
    return len(name) <= 253 and all(_HOST_LABEL.fullmatch(lb) for lb in name.split("."))


def normalise_domain(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    try:
        name = ascii_domain(name)
    except UnicodeError:
        raise AddressError(f"{name!r} is not a valid domain name") from None
    if "." not in name or not is_host_name(name):
        raise AddressError(f"{name!r} is not a valid domain name")
    return name


def check_address(address: str) -> str:
    """Return the normalised address or raise AddressError naming the problem."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise AddressError(f"{address!r} is not an e-mail address (user@domain)")
    if len(local.encode("utf-8", "replace")) > 64 or not _LOCAL_RE.fullmatch(local) \
            or ".." in local or not (local.isascii() or local.isprintable()) \
            or any(c.isspace() for c in local):
        raise AddressError(f"{address!r} has an invalid local part")
    return f"{local.lower()}@{normalise_domain(domain)}"


def clean_valid_address_line(line: str) -> str | None:
    """Clean one line of a pasted valid-address list, as the FAQ describes.

    ``user@domain.com`` is taken as it is; ``<user@domain.com>``, ``"Jane Doe"
    jane.doe@domain.com`` and ``Jane Doe <jane.doe@domain.com>`` have the name and brackets
    stripped.  Blank lines and ``#`` comments give None.  Anything else raises AddressError.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if "<" in text or ">" in text:
        match = re.fullmatch(r'(?:"[^"]*"|[^<>"]*)\s*<([^<>\s]+)>', text)
        if not match:
            raise AddressError(f"{line.strip()!r}: cannot find one address in angle brackets")
        text = match.group(1)
    else:
        quoted = re.fullmatch(r'"[^"]*"\s+(\S+)', text)
        if quoted:
            text = quoted.group(1)
        elif len(text.split()) > 1:
            words = [w for w in text.split() if "@" in w]
            if len(words) != 1:
                raise AddressError(f"{line.strip()!r}: expected one address per line")
            text = words[0]
    return check_address(text)


@dataclass(frozen=True)
class ListEntry:
    """A black/white list entry: an IP network, a domain (and its subdomains) or an address."""

    text: str
    network: IPNetwork | None = None

    @property
    def kind(self) -> str:
        if self.network is not None:
            return "ip"
        return "address" if "@" in self.text else "domain"

    @classmethod
    def parse(cls, text: str) -> ListEntry:
        text = text.strip()
        try:
            network = parse_network(text)
            return cls(str(network), network)
        except ZonedNetworkError:
            raise                       # an address after all: say what is wrong with it
        except AddressError:
            pass
        if "@" in text:
            return cls(check_address(text))
        domain = normalise_domain(text)
        if domain.rpartition(".")[2].isdigit():
            # No top-level domain is all digits (RFC 3696 2): this is an address written
            # short (192.168.1), with leading zeros or as a range, which as a domain
            # entry matched no client while looking like the address meant.
            raise AddressError(f"{text!r} is no IP address or network the list can read:"
                               " write one as 192.0.2.1 or 192.0.2.0/24")
        return cls(domain)


# The widest network an administrator may name on a relay or a black/white list: 0.0.0.0/0
# (or a typo such as 10.0.0.0/0) would take in most of the Internet.
WIDEST_PREFIX = {4: 8, 6: 16}


def too_wide(network: IPNetwork) -> bool:
    return network.prefixlen < WIDEST_PREFIX[network.version]


class ZonedNetworkError(AddressError):
    """An IPv6 network with a zone (%eth0): an address, but none a list may hold."""


def parse_network(text: str) -> IPNetwork:
    """A network; IPv4-mapped IPv6 ones as the IPv4 network, as clients are seen (parse_ip)."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise AddressError(f"{text!r} is not an IP address or CIDR network") from None
    if getattr(network.network_address, "scope_id", None) is not None:
        # A zone (%eth0) names a link of this host; it matches no client, and its text
        # (any characters, line breaks too) went into lists and the firewall's commands.
        raise ZonedNetworkError(f"{text!r}: an IPv6 zone (%...) has no place in a network")
    mapped = getattr(network.network_address, "ipv4_mapped", None)
    if mapped is not None and network.prefixlen >= 96:
        return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
    return network


def vendor_network_problem(text: str) -> str:
    """Why ``text`` cannot be a vendor netblock ('' if it can).  The one rule for every
    place the vendor's networks are read (the firewall's SSH sets, the update agent's own
    check, and through the roles sshd's AllowUsers and from=): each refusal would open SSH
    and update pushes far wider than meant, or silently match no source at all."""
    try:
        network = ipaddress.ip_network(text)
    except ValueError:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            return "is not an IP network like 198.51.100.0/24"
        # sshd reads such a pattern as an error and would shut the vendor out; the
        # firewall would quietly take the whole network
        return "has host bits set: write the network address (like 198.51.100.0/24)"
    address = network.network_address
    if getattr(address, "scope_id", None) is not None:
        return "has a zone (%...), which no source address carries"
    if getattr(address, "ipv4_mapped", None) is not None:
        return ("is IPv4-mapped IPv6, which no packet carries; write the IPv4 network "
                "instead")
    if too_wide(network):
        return (f"is too broad (at most /{WIDEST_PREFIX[network.version]} for IPv"
                f"{network.version}): it would open SSH to much of the Internet")
    if (network.is_loopback or network.is_multicast or network.is_link_local
            or address.is_unspecified or network.overlaps(_THIS_NETWORK)):
        return "is not a network the vendor can connect from"
    return ""


_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


def vendor_network(text: str) -> IPNetwork:
    """``text`` as a vendor netblock; AddressError saying why it cannot be one."""
    problem = vendor_network_problem(text)
    if problem:
        raise AddressError(f"{text!r} {problem}")
    return ipaddress.ip_network(text)


def check_note(note: str) -> str:
    """An administrator's note on a list entry or relay: one line, kept short."""
    note = note.strip()
    if len(note) > 200 or any(c < " " or c == "\x7f" for c in note):
        raise AddressError("a note is one line of at most 200 characters")
    return note


@functools.lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def source_of(client_ip: str) -> str:
    """One client for per-client limits: its IPv4 address, or its IPv6 /64 (one host can
    take a /64's addresses as it likes); the text as given when it is no address."""
    ip = parse_ip(client_ip)
    if ip is None:
        return client_ip
    if ip.version == 4:
        return str(ip)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def domain_matches(domain: str, pattern: str) -> bool:
    """``example.com`` matches itself and its subdomains."""
    return domain == pattern or domain.endswith("." + pattern)


def matches_any(domain: str, patterns: Container[str]) -> bool:
    """Whether ``domain`` matches one of ``patterns`` (a set, or the snapshot's dict of
    domains), as ``domain_matches`` says: its suffixes at each dot are looked up, where a
    loop over the patterns would cost an ISP's hundreds of domains for every link."""
    position = 0
    while position >= 0:
        if domain[position:] in patterns:
            return True
        position = domain.find(".", position)
        if position >= 0:
            position += 1
    return False


def header_addresses(values: Iterable[object]) -> list[tuple[str, str]]:
    """(display name, address) of every address in these header values (From, To, ...):
    ``email.utils.getaddresses``, which a message's plain address lists skip.

    The email package's reader costs 9 us an address; most headers hold only the plain
    forms, which one regular expression reads the same way in well under one.
    """
    texts = [str(v) for v in values]
    found = []
    for text in texts:
        for element in text.split(","):
            plain = _PLAIN_ADDRESS.fullmatch(element.strip(_BLANKS))
            if plain is None:
                try:
                    return getaddresses(texts)
                except RecursionError:  # comments nested thousands deep: no address
                    return []
            found.append(_plain_reading(plain))
    return found


def header_address(value: object) -> tuple[str, str]:
    """The first (display name, address) of one header value, ('', '') when there is
    none: ``email.utils.parseaddr``, which plain addresses skip as above."""
    text = str(value)
    plain = _PLAIN_ADDRESS.fullmatch(text.strip(_BLANKS))
    if plain is not None:
        return _plain_reading(plain)
    try:
        return parseaddr(text)
    except RecursionError:  # comments nested thousands deep: no address
        return "", ""


def _plain_reading(plain: re.Match[str]) -> tuple[str, str]:
    """(name, address) of a ``_PLAIN_ADDRESS`` match: the name's words joined by one space,
    as the email package joins them."""
    name = plain["name"]
    return (" ".join(_FOLDING_SPACE.split(name)) if name else "",
            plain["angled"] or plain["bare"])
