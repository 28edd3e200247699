"""Derive the Debian repositories for the image and the tools tree from the host's apt sources.

The image must come from the same mirror the build host already uses (a site mirror, a
proxy-fronted mirror, a snapshot), so nothing here names a mirror host.  Both source formats
are read: deb822 ``*.sources`` files and one-line ``sources.list`` entries.  Entries are
classified by suite: ``<codename>``, ``<codename>-updates`` and ``<codename>-backports`` come
from the archive mirror; ``<codename>-security`` from the security mirror.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


class SourcesError(Exception):
    """The host's apt configuration does not tell us where Debian comes from."""


@dataclass(frozen=True)
class Source:
    """One apt source: a URI, its suites and components (only binary ``deb`` kept)."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    origin: str = ""             # file (and line) it came from, for error messages
    options: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Mirrors:
    """Where the Debian archive and its security updates come from on this host."""

    archive: str
    security: str | None

    def repositories(self, release: str, *, keyring: Path = DEFAULT_KEYRING,
                     components: Iterable[str] = ("main",)) -> str:
        """deb822 text of the repositories for ``release`` (archive, updates, security)."""
        comps = " ".join(components)
        stanzas = [_stanza(self.archive, f"{release} {release}-updates", comps, keyring)]
        if self.security:
            stanzas.append(_stanza(self.security, f"{release}-security", comps, keyring))
        return "\n".join(stanzas)


def _stanza(uri: str, suites: str, components: str, keyring: Path) -> str:
    return (f"Types: deb\nURIs: {uri}\nSuites: {suites}\nComponents: {components}\n"
            f"Signed-By: {keyring}\n")


def parse_one_line(text: str, origin: str = "sources.list") -> list[Source]:
    """Parse one-line style entries (``deb [opts] URI SUITE COMPONENT...``)."""
    found: list[Source] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        options: dict[str, str] = {}
        match = re.match(r"^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
        if not match:
            raise SourcesError(f"{origin}:{number}: cannot parse {raw.strip()!r}")
        kind, opts, uri, suite, comps = match.groups()
        if kind != "deb":
            continue
        for opt in (opts or "").split():
            key, _, value = opt.partition("=")
            options[key] = value
        found.append(Source(uri.rstrip("/"), (suite,), tuple(comps.split()),
                            f"{origin}:{number}", options))
    return found


def parse_deb822(text: str, origin: str = "debian.sources") -> list[Source]:
    """Parse deb822 stanzas (``Types:``, ``URIs:``, ``Suites:``, ``Components:``)."""
    found: list[Source] = []
    for index, stanza in enumerate(_stanzas(text), start=1):
        fields = {k.lower(): v for k, v in stanza.items()}
        if fields.get("enabled", "yes").strip().lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        uris = fields.get("uris", "").split()
        suites = tuple(fields.get("suites", "").split())
        if not uris or not suites:
            raise SourcesError(f"{origin}: stanza {index} has no URIs or Suites")
        components = tuple(fields.get("components", "").split())
        for uri in uris:
            found.append(Source(uri.rstrip("/"), suites, components, f"{origin}#{index}",
                                dict(stanza)))
    return found


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
            continue
        if raw[0] in " \t" and key:
            current[key] += " " + raw.strip()
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            raise SourcesError(f"not a deb822 field: {raw.strip()!r}")
        key = key.strip()
        current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def read_host_sources(etc_apt: Path = Path("/etc/apt")) -> list[Source]:
    """Every enabled binary source of the host, from sources.list and sources.list.d."""
    sources: list[Source] = []
    legacy = etc_apt / "sources.list"
    if legacy.is_file():
        sources += parse_one_line(legacy.read_text(encoding="utf-8"), str(legacy))
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                sources += parse_one_line(path.read_text(encoding="utf-8"), str(path))
            elif path.suffix == ".sources":
                sources += parse_deb822(path.read_text(encoding="utf-8"), str(path))
    return sources


def find_mirrors(sources: Iterable[Source], codename: str) -> Mirrors:
    """The archive and security mirrors serving ``codename`` (e.g. bookworm)."""
    archive: str | None = None
    security: str | None = None
    for source in sources:
        if "main" not in source.components:
            continue
        for suite in source.suites:
            if suite in (f"{codename}-security", f"{codename}/updates"):
                security = security or source.uri
            elif suite in (codename, f"{codename}-updates", f"{codename}-backports"):
                archive = archive or source.uri
    if archive is None:
        raise SourcesError(
            f"no apt source of this host serves Debian '{codename}' main; the image is built "
            f"from the host's own mirror (add one to /etc/apt/sources.list.d/debian.sources)")
    return Mirrors(archive, security)


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    """The host's Debian codename from os-release (VERSION_CODENAME)."""
    for line in os_release.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise SourcesError(f"{os_release}: no VERSION_CODENAME; is this a Debian host?")
