"""Protected domains: where their mail goes and how recipients are validated."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

from portcullis.addresses import AddressError, normalise_domain
from portcullis.config import HostPort, parse_hostport, split_hostport
from portcullis.ownaddresses import is_interface_address, names_this_appliance
from portcullis.store import Store


@dataclass(frozen=True)
class Domain:
    name: str
    mail_host: HostPort
    filtering: bool = True
    smtp_validation: bool = True       # ask the internal host whether a recipient exists
    reject_non_validated: bool = True  # refuse recipients that could not be validated

    def to_json(self) -> dict:
        return {"name": self.name, "mail_host": str(self.mail_host),
                "filtering": self.filtering, "smtp_validation": self.smtp_validation,
                "reject_non_validated": self.reject_non_validated}


SWITCHES = ("filtering", "smtp_validation", "reject_non_validated")


def parse_mail_host(text: str) -> HostPort:
    """A mail host as typed (host or address, optional port); AddressError saying why
    when it is no host, or an address of this appliance's interfaces (loopback aside:
    that is ``is_this_appliance``'s, a super administrator's choice)."""
    try:
        host = parse_hostport(text, default_port=25)
    except ValueError as exc:
        raise AddressError(f"mail host {exc}") from None
    if is_interface_address(host.host):
        # Its port 25 is the gateway itself: the domain's mail would loop through it.
        raise AddressError(f"mail host {host.host} is an address of this appliance itself;"
                           " give the address of the internal mail server")
    return host


def is_this_appliance(host: HostPort) -> bool:
    """Whether a mail host names the appliance itself (loopback, "any", localhost): its
    own services (the outbound Postfix, the resolver, the web UI) are no domain's mail host
    but the super administrator's to set, as for tests and relaying set-ups."""
    return names_this_appliance(host.host)


def _from_row(row: dict) -> Domain:
    return Domain(row["name"], split_hostport(row["mail_host"], 25), bool(row["filtering"]),
                  bool(row["smtp_validation"]), bool(row["reject_non_validated"]))


def list_domains(store: Store, names: list[str] | None = None) -> list[Domain]:
    """Every protected domain, or only those named (a domain administrator's view)."""
    rows = store.query("SELECT * FROM domains ORDER BY name")
    domains = [_from_row(r) for r in rows]
    return domains if names is None else [d for d in domains if d.name in names]


def get_domain(store: Store, name: str) -> Domain | None:
    row = store.query_one("SELECT * FROM domains WHERE name = ?", (normalise_domain(name),))
    return _from_row(row) if row else None


def add_domain(store: Store, name: str, mail_host: str, **switches: bool) -> Domain:
    domain = Domain(normalise_domain(name), parse_mail_host(mail_host),
                    **{k: v for k, v in switches.items() if v is not None})
    with store.transaction():
        if get_domain(store, domain.name):
            raise AddressError(f"domain {domain.name} is already protected")
        store.execute(
            "INSERT INTO domains (name, mail_host, filtering, smtp_validation,"
            " reject_non_validated, created) VALUES (?, ?, ?, ?, ?, ?)",
            (domain.name, str(domain.mail_host), domain.filtering, domain.smtp_validation,
             domain.reject_non_validated, time.time()))
        store.bump_generation()
    return domain


def update_domain(store: Store, name: str, mail_host: str | None = None,
                  **switches: bool | None) -> Domain:
    with store.transaction():
        current = get_domain(store, name)
        if current is None:
            raise AddressError(f"domain {name} is not protected")
        values = {f.name: getattr(current, f.name) for f in fields(Domain)}
        if mail_host is not None:
            values["mail_host"] = parse_mail_host(mail_host)
        for key, value in switches.items():
            if key not in SWITCHES:
                raise AddressError(f"unknown domain setting {key!r}")
            if value is not None:
                values[key] = bool(value)
        domain = Domain(**values)
        store.execute(
            "UPDATE domains SET mail_host = ?, filtering = ?, smtp_validation = ?,"
            " reject_non_validated = ? WHERE name = ?",
            (str(domain.mail_host), domain.filtering, domain.smtp_validation,
             domain.reject_non_validated, domain.name))
        store.bump_generation()
    return domain


def remove_domain(store: Store, name: str) -> None:
    try:
        stored = normalise_domain(name)
    except AddressError:
        stored = name.strip()   # as an older release stored what this one refuses
    with store.transaction():
        if not store.execute("DELETE FROM domains WHERE name = ?", (stored,)):
            raise AddressError(f"domain {name} is not protected")
        store.bump_generation()
