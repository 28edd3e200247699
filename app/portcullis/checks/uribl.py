"""URI blocklists: web addresses in the message whose domains are listed (e.g. Spamhaus
DBL).  The domains of links in text and HTML parts, in attached PDFs (the one link of a
phishing PDF is its whole point) and in QR codes drawn in pictures, are reduced to their
organisational domain and looked up as ``<domain>.<zone>``; a listing scores (the
``uribl_zones`` rules may also say ``reject``).  Our own protected domains are never
looked up; lookups fail open like the client DNSBLs.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING

from portcullis.addresses import (
    AddressError,
    ends_in_number,
    matches_any,
    normalise_domain,
    parse_ip,
)
from portcullis.antivirus.archives import shared_inventory
from portcullis.blocklists import REJECT, ZoneCache
from portcullis.checks.attachments import Attachments
from portcullis.checks.base import Check, Context, Stage
from portcullis.checks.dnsbl import LISTED_SCORE, unavailable
from portcullis.mailauth.orgdomain import organisational_domain
from portcullis.mime import part_text, walk
from portcullis.policy import Flag, Symbol

if TYPE_CHECKING:
    from portcullis.services import Services

DEFAULT_SCORE = 5.0
MAX_DOMAINS = 20              # looked up per message (spam may carry thousands of links)
MAX_HOSTS = 500               # distinct link hosts read from one text part
MAX_TEXT = 512 * 1024         # characters of each text part searched for links
# (?=[hfw]): the letters a link starts with, so the engine skips other text quickly.
# A host may be percent-encoded (three characters a byte): up to 3 x 253 of them.
# Browsers read a backslash as a slash in web links (WHATWG URL): it ends the user part
# and the host, so "http://evil.example\\@good.example/" opens evil.example.
_HOST = r"([A-Za-z0-9\u00a1-\uffff%][A-Za-z0-9\u00a1-\uffff.%-]{0,758})"
_URL = re.compile(r"(?=[hfw])(?:\b(?:https?|ftp):[/\\]{2}(?:[^\s/\\?#@\"'<>]*@)?|\b(?=www\.))"
                  + _HOST, re.IGNORECASE)
# A link in an HTML attribute, as a browser reads the attribute's value (entities undone,
# tabs and line breaks removed): after a web scheme any number of slashes and
# backslashes, or none; or no scheme but two of them (relative to the page's scheme).
_LINK_ATTRIBUTE = re.compile(
    r"""\b(?:href|src|action|formaction|background)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""",
    re.IGNORECASE)
_ATTRIBUTE_URL = re.compile(r"[\x00-\x20]*(?:(?:https?|ftp):[/\\]*|[/\\]{2})"
                            r"(?:[^/\\?#]*@)?" + _HOST, re.IGNORECASE)
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\r\n")


def link_domains(ctx: Context, attached: list[str], limit: int = MAX_DOMAINS) -> list[str]:
    """Organisational domains of the links in the text parts, then of the ``attached``
    links (found inside attachments: a PDF's link annotations, a QR code's text), in order
    of appearance."""
    assert ctx.snapshot is not None
    hosts: dict[str, None] = {}          # spam repeats a few hosts many times: look once
    for text_hosts in [*_part_hosts(ctx), *map(_url_hosts, attached)]:
        for host in text_hosts:
            hosts[host.lower()] = None
            if len(hosts) >= MAX_HOSTS:
                break
    found: list[str] = []
    for host in hosts:
        domain = _domain(host)
        if domain is None:
            continue
        if domain in found or matches_any(domain, ctx.snapshot.domains):
            continue
        found.append(domain)
        if len(found) >= limit:
            break
    return found


def _part_hosts(ctx: Context) -> Iterator[Iterator[str]]:
    """The link hosts of each text part.  HTML is read as a browser reads it: with
    character references undone (``http&#58;//`` is ``http://``), and its link attributes
    also read on their own, where links have forms plain text does not."""
    for _, part in walk(ctx.message):
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        text = part_text(part, MAX_TEXT)
        if part.get_content_subtype() == "html":
            yield _url_hosts(html.unescape(text))
            yield _attribute_hosts(text)
        else:
            yield _url_hosts(text)


def _url_hosts(text: str) -> Iterator[str]:
    return (match.group(1) for match in _URL.finditer(text))


def _attribute_hosts(source: str) -> Iterator[str]:
    for match in _LINK_ATTRIBUTE.finditer(source):
        value = html.unescape(next(group for group in match.groups() if group is not None))
        link = _ATTRIBUTE_URL.match(value.translate(_TAB_OR_NEWLINE))
        if link:
            yield link.group(1)


def _domain(host: str) -> str | None:
    """The organisational domain of a link's host, None for an address or no name.

    Browsers percent-decode a host (WHATWG URL): ``evil%2Eexample`` is ``evil.example``.
    When the decoded text is no domain name, the text before the '%' is read instead, so
    text stuck to a link (``example.com%20...``) still names the domain it did."""
    readings = [host]
    if "%" in host:
        readings = [urllib.parse.unquote(host, errors="replace"), host.partition("%")[0]]
    for reading in readings:
        reading = reading.rstrip(".-").lower()
        if parse_ip(reading) is not None:
            return None
        if ends_in_number(reading):
            return None          # an IPv4 address, as a browser reads it
        try:
            return organisational_domain(normalise_domain(reading))
        except AddressError:
            continue
    return None


class UriBlocklist(Check):
    name = "uribl"
    stage = Stage.DATA
    description = "domains of links in the body, attached PDFs and QR codes on a URI blocklist"

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        # Links in attached PDFs come from the attachment inventory, which the attachment
        # check waits for as long: no message waits longer for this check than for that.
        self.timeout = self.services.config.dns.timeout * 2 + 1 + Attachments.timeout
        self.zones = ZoneCache(DEFAULT_SCORE)

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.snapshot is not None
        zones = self.zones.get(ctx.snapshot.settings["uribl_zones"])
        if not zones:
            return []
        domains = link_domains(ctx, (await shared_inventory(ctx)).links)
        if not domains:
            return []
        resolver = self.services.resolver
        queries = [(zone, domain) for zone in zones for domain in domains]
        answers = await resolver.lookup_all([(f"{domain}.{zone.zone}", "A")
                                             for zone, domain in queries])
        found: list[Symbol] = []
        for zone in zones:
            results = [(domain, answer) for (z, domain), answer
                       in zip(queries, answers, strict=True) if z is zone]
            failed = next((a for _, a in results if a.status.failed), None)
            if failed is not None:
                found.append(unavailable(zone, "links", failed))
            # One symbol per zone however many links it lists: the strongest listing.
            listed = [(domain, *zone.judge(answer.records)[:2]) for domain, answer in results
                      if not answer.status.failed]
            listed = [item for item in listed if item[1] is not None]
            if not listed:
                continue
            strongest = next((item for item in listed if item[1] == REJECT), None) or \
                max(listed, key=lambda item: float(item[1]))
            domain, action, code = strongest
            names = ", ".join(item[0] for item in listed)
            if action == REJECT:
                found.append(Symbol(f"URIBL_{zone.tag}", LISTED_SCORE,
                                    f"URI Block: {zone.label} {domain}", Flag.REJECT))
            else:
                found.append(Symbol(f"URIBL_{zone.tag}", float(action),
                                    f"links to {names} listed in {zone.label} ({code})"))
        return found
