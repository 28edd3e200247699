"""Identity and header sanity: does the client say who it is, and do the headers add up?

Heuristics only, so only modest scores and never a hard verdict: real mail servers get
HELO wrong too.  What is looked at:

- HELO/EHLO: an address literal that is not the client's, a bare IP, our own name or the
  recipient's domain (spammers pretend to be us), a name that is not a FQDN, or not a
  host name at all.
- From: several From headers or none usable, a display name that shows a mail address
  of another organisation ("service@bank.example" <x@elsewhere>; not a relay's "... via
  List"), and (weakly) a From domain that is not the envelope sender's organisation.
- Message-ID without the ``<left@right>`` form; Date that cannot be read, or lies far
  in the future or past of when the message was received (the newest Received header's
  date, else now, so that an old corpus is judged as it arrived).

Forged senders from our own domains are judged with SPF and DKIM in authentication.py.
"""

from __future__ import annotations

import re
import time
from email.message import Message
from email.utils import parsedate_to_datetime

from portcullis.addresses import domain_of, header_addresses, parse_ip
from portcullis.checks.base import Check, Context, Stage
from portcullis.mailauth.orgdomain import organisational_domain
from portcullis.policy import Symbol

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$")
_ADDRESS_IN_NAME = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
_RELAYED_AUTHOR = re.compile(r"\bvia\b", re.IGNORECASE)
FUTURE_SLACK = 24 * 3600.0        # clocks and time zones are often wrong by hours
PAST_SLACK = 14 * 86400.0


class Identity(Check):
    name = "identity"
    stage = Stage.DATA
    inline = True
    description = "HELO sanity, From/envelope consistency, Message-ID and Date oddities"

    async def check(self, ctx: Context) -> list[Symbol]:
        # "Us" to this message is the gateway and the recipients' domains: an ISP protects
        # hundreds, and a customer's server greeting with its own domain while writing to
        # another customer was scored as a spammer posing as the recipient's domain.
        own = {self.services.config.smtp.hostname.lower(),
               *(domain_of(recipient) for recipient in ctx.recipients)}
        return [*helo_symbols(ctx.helo, ctx.client_ip, own),
                *from_symbols(ctx.message, ctx.mail_from),
                *message_id_symbols(ctx.message),
                *date_symbols(ctx.message)]


def helo_symbols(helo: str, client_ip: str, own_names: set[str]) -> list[Symbol]:
    """What is odd about the name the client gave in HELO/EHLO."""
    helo = helo.strip()
    client = parse_ip(client_ip)
    if helo.startswith("[") and helo.endswith("]"):
        inner = helo[1:-1]
        literal = parse_ip(inner[5:] if inner.lower().startswith("ipv6:") else inner)
        if literal is None:
            return [Symbol("HELO_INVALID", 1.0, f"HELO {helo!r} is not an address literal")]
        if literal != client:
            return [Symbol("HELO_IP_MISMATCH", 1.5,
                           f"HELO {helo} is not the client's address {client_ip}")]
        return []
    if parse_ip(helo) is not None:
        found = [Symbol("HELO_BARE_IP", 1.0, f"HELO {helo} is an address without brackets")]
        if parse_ip(helo) != client:
            found.append(Symbol("HELO_IP_MISMATCH", 1.5,
                                f"HELO {helo} is not the client's address {client_ip}"))
        return found
    name = helo.lower().rstrip(".")
    if name in own_names:
        return [Symbol("HELO_IS_OURS", 2.5, f"HELO {helo} claims to be this gateway or the "
                                            "recipient's domain")]
    if not _HOSTNAME.match(helo):
        return [Symbol("HELO_INVALID", 1.0, f"HELO {helo[:80]!r} is not a host name")]
    if "." not in name:
        return [Symbol("HELO_NOT_FQDN", 1.0, f"HELO {helo} is not a fully qualified name")]
    return []


def from_symbols(message: Message, mail_from: str) -> list[Symbol]:
    """Oddities of the From header, alone and against the envelope sender."""
    headers = message.get_all("From") or []
    if not headers:
        return []       # structure.py scores a missing From
    found: list[Symbol] = []
    if len(headers) > 1:
        found.append(Symbol("FROM_MULTIPLE", 2.0,
                            f"{len(headers)} From headers (only one is allowed)"))
    pairs = [(name, addr) for name, addr in header_addresses(headers)
             if name or addr]
    addresses = [addr for _, addr in pairs if "@" in addr]
    if not addresses:
        found.append(Symbol("FROM_INVALID", 1.0, "From header holds no mail address"))
        return found
    name, address = next((n, a) for n, a in pairs if "@" in a)
    header_domain = address.rpartition("@")[2].lower()
    shown = _ADDRESS_IN_NAME.search(name or "")
    # Relays name the real author in the display name ("'a@b.example' via List" from
    # Google Groups and Mailman, "a@b.example (via Google Drive)"), and an address of
    # the sender's own organisation shows no one else: neither is a spoof.
    if shown and not _RELAYED_AUTHOR.search(name) and \
            organisational_domain(shown.group(0).rpartition("@")[2]) != \
            organisational_domain(header_domain):
        found.append(Symbol("FROM_NAME_SPOOF", 1.5, f"From display name shows {shown.group(0)}"
                                                    f" but the address is {address}"))
    envelope_domain = mail_from.rpartition("@")[2].lower()
    if envelope_domain and header_domain and \
            organisational_domain(header_domain) != organisational_domain(envelope_domain):
        found.append(Symbol("FROM_ENVELOPE_MISMATCH", 0.3,
                            f"From domain {header_domain} differs from the envelope sender's"
                            f" {envelope_domain}"))
    return found


def message_id_symbols(message: Message) -> list[Symbol]:
    value = str(message.get("Message-ID") or "").strip()
    if value and not re.fullmatch(r"<[^<>\s@]+@[^<>\s@]+>", value):
        return [Symbol("MID_MALFORMED", 0.5, f"Message-ID {value[:80]!r} is not <left@right>")]
    return []


def date_symbols(message: Message, now: float | None = None) -> list[Symbol]:
    value = str(message.get("Date") or "").strip()
    if not value:
        return []       # structure.py scores a missing Date
    sent = _timestamp(value)
    if sent is None:
        return [Symbol("DATE_INVALID", 1.0, f"Date {value[:60]!r} cannot be read")]
    received = _received_time(message)
    reference = received if received is not None else (time.time() if now is None else now)
    if sent - reference > FUTURE_SLACK:
        return [Symbol("DATE_IN_FUTURE", 1.5, f"Date {value[:60]} is more than a day after the"
                                              " message was received")]
    if reference - sent > PAST_SLACK:
        return [Symbol("DATE_IN_PAST", 0.5, f"Date {value[:60]} is more than two weeks before"
                                            " the message was received")]
    return []


def _timestamp(value: str) -> float | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def _received_time(message: Message) -> float | None:
    """The date of the newest Received header (after its last ';'), if readable."""
    received = message.get("Received")
    if not received:
        return None
    _, semicolon, when = str(received).rpartition(";")
    return _timestamp(when.strip()) if semicolon else None
