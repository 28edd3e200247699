"""List validation: the addresses a protected domain is known to have."""

from __future__ import annotations

from dataclasses import dataclass, field

from portcullis.addresses import (
    AddressError,
    address_key,
    clean_valid_address_line,
    domain_of,
)
from portcullis.directory.domains import Domain, get_domain
from portcullis.directory.settings import recipient_delimiter
from portcullis.store import Store

IMPORT_BATCH = 10_000       # addresses written in one transaction


@dataclass
class ImportResult:
    added: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)   # one line per refused input line
    refused_lines: int = 0     # of the errors, those about a line (the rest: the whole list)


def parse_address_list(text: str, domain: str) -> tuple[list[str], list[str]]:
    """Clean a pasted list; return (addresses, error lines).  Nothing is stored."""
    addresses: list[str] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            address = clean_valid_address_line(line)
        except AddressError as exc:
            errors.append(f"line {number}: {exc}")
            continue
        if address is None:
            continue
        if domain_of(address) != domain:
            errors.append(f"line {number}: {address} is not in domain {domain}")
            continue
        addresses.append(address)
    return addresses, errors


def import_addresses(store: Store, domain_name: str, text: str, *, replace: bool = False,
                     strict: bool = True) -> ImportResult:
    """Add the addresses of a pasted list to a domain (or replace its list).

    With ``strict`` nothing is stored when any line is refused, so an administrator never
    ends up with half a list; the result lists every refused line.  (Written in batches:
    an import cut short by a crash leaves some of its additions, never a wrong removal.)
    """
    domain = get_domain(store, domain_name)
    if domain is None:
        raise AddressError(f"domain {domain_name} is not protected")
    addresses, errors = parse_address_list(text, domain.name)
    if replace and not addresses and domain.reject_non_validated \
            and not domain.smtp_validation:
        # An empty paste or file (or one of comments) with "replace": the list is all this
        # domain validates by, and every sender's mail would be deferred (451 4.3.0).
        return ImportResult(errors=[*errors, f"the list holds no address: replacing {domain.name}"
                                    "'s list with it would defer all its mail"],
                            refused_lines=len(errors))
    result = ImportResult(errors=errors, refused_lines=len(errors))
    if errors and strict:
        return result
    unique = list(dict.fromkeys(addresses))
    # In batches, each its own short transaction: the gateway waits at most 5 s for the
    # store's write lock, and one transaction for 500,000 addresses held it for seconds.
    # A replace removes only what the new list lacks and adds only what it brings, so an
    # address on both lists is never missing in between (no wrong 550 while it runs).
    remove: list[str] = []
    if replace:
        wanted = set(unique)
        remove = [address for address in list_addresses(store, domain.name)
                  if address not in wanted]
    for start in range(0, len(remove), IMPORT_BATCH):
        store.executemany("DELETE FROM valid_addresses WHERE address = ?",
                          [(address,) for address in remove[start:start + IMPORT_BATCH]])
    for start in range(0, len(unique), IMPORT_BATCH):
        result.added += store.executemany(
            "INSERT INTO valid_addresses (address, domain) VALUES (?, ?)"
            " ON CONFLICT (address) DO NOTHING",
            [(address, domain.name) for address in unique[start:start + IMPORT_BATCH]])
    result.unchanged = len(unique) - result.added
    return result


# Addresses and domains are looked up in the form they are stored in (check_address's:
# lower case, A-labels, no root dot), however the administrator typed them: "Dave@BÜCHER
# .example" was reported as no valid address, and a domain typed in capitals as empty.

def _stored_domain(domain: str) -> str:
    return domain_of(domain.strip().rstrip("."))


def list_addresses(store: Store, domain: str) -> list[str]:
    rows = store.query("SELECT address FROM valid_addresses WHERE domain = ? ORDER BY address",
                       (_stored_domain(domain),))
    return [r["address"] for r in rows]


def remove_address(store: Store, address: str) -> bool:
    return bool(store.execute("DELETE FROM valid_addresses WHERE address = ?",
                              (address_key(address),)))


def count_addresses(store: Store, domain: str) -> int:
    return int(store.scalar("SELECT COUNT(*) FROM valid_addresses WHERE domain = ?",
                            (_stored_domain(domain),)))


def has_addresses(store: Store, domain: str) -> bool:
    """Whether the domain's list holds any address: one row read, however long it is
    (asked at RCPT, where counting half a million addresses would hold up the client)."""
    return store.query_one("SELECT 1 AS x FROM valid_addresses WHERE domain = ? LIMIT 1",
                           (_stored_domain(domain),)) is not None


def defers_all_mail(store: Store, domain: Domain) -> bool:
    """Whether the domain validates recipients by its list alone and the list is empty:
    the gateway then defers every recipient (451 4.3.0, smtp/recipients.py) until an
    address is listed or SMTP validation is turned on."""
    return domain.reject_non_validated and not domain.smtp_validation \
        and not has_addresses(store, domain.name)


def subaddress_owner(address: str, delimiter: str) -> str:
    """The address whose subaddress ``address`` is: its local part cut at the first of
    ``delimiter``'s characters (Postfix's recipient_delimiter), so dave+news@ is dave@;
    ``address`` itself when no character of it follows a user's name."""
    local, at, domain = address.rpartition("@")
    cuts = [i for i in (local.find(c) for c in delimiter) if i > 0]
    return f"{local[:min(cuts)]}{at}{domain}" if cuts else address


def is_listed(store: Store, address: str) -> bool:
    """Whether ``address`` is on its domain's list, as written or as the user whose
    subaddress it is (``recipient_delimiter``): listed dave@ takes dave+news@'s mail."""
    key = address_key(address)
    owner = subaddress_owner(key, recipient_delimiter(store))
    return store.query_one("SELECT 1 AS x FROM valid_addresses WHERE address IN (?, ?)",
                           (key, owner)) is not None
