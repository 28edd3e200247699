"""Runtime policy settings: thresholds, tag phrase, reject text, retention, ...

Each setting is declared once here with its type, bounds and help text; the CLI
(``portcullis settings``) and the web UI's settings page are built from this table.
The configuration file's ``[policy]`` section gives the value until one is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portcullis.antivirus.filetypes import DEFAULT_BLOCKED_EXTENSIONS
from portcullis.blocklists import validate_zones
from portcullis.config import Config
from portcullis.numbers import NumberError, parse_number
from portcullis.store import Store


class SettingError(ValueError):
    """A setting name or value that cannot be used."""


# Characters that may end a user's name in a subaddress (Postfix's recipient_delimiter):
# none that is part of an address's own syntax (letters, digits, '.', '@', quotes) or of
# sender-specified routing ('%', '!'), which would cut real addresses apart.
DELIMITER_CHARACTERS = "+-_=#~^&*/$"
DEFAULT_RECIPIENT_DELIMITER = "+"     # Postfix's common configuration


def _check_delimiter(value: str) -> None:
    wrong = "".join(sorted(set(value) - set(DELIMITER_CHARACTERS)))
    if wrong:
        raise ValueError(f"{wrong!r} cannot separate a subaddress; use characters of"
                         f" {DELIMITER_CHARACTERS}")


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type                       # bool, int, float, str or list (of str)
    help: str
    default: Callable[[Config], Any]
    minimum: float | None = None
    maximum: float | None = None
    # Further checks of the value (raise ValueError saying why), e.g. a list's syntax.
    validate: Callable[[Any], None] | None = None
    choices: tuple[str, ...] | None = None   # the only values a str setting may take

    def coerce(self, value: Any) -> Any:
        """Turn text (CLI, form) or JSON into a checked value of this setting's type."""
        try:
            if self.kind is bool:
                if isinstance(value, str):
                    if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError
                    value = value.lower() in ("1", "true", "yes", "on")
                result: Any = bool(value)
            elif self.kind is list:
                items = value.replace(",", "\n").splitlines() if isinstance(value, str) else value
                result = [str(i).strip() for i in items if str(i).strip()]
            elif self.kind is str:
                result = str(value)
            else:
                # Finite and within bounds, or an error naming the range: float() reads
                # "nan" and "inf", and a nan threshold would match no score at all.
                result = parse_number(value, self.kind, name=self.name,
                                      minimum=self.minimum, maximum=self.maximum)
        except NumberError as exc:
            raise SettingError(str(exc)) from None
        except (TypeError, ValueError):
            raise SettingError(
                f"{self.name}: expected {self.kind.__name__}, got {value!r}") from None
        if isinstance(result, str) and any(c in result for c in "\r\n\0"):
            raise SettingError(f"{self.name}: must be a single line")
        if self.choices is not None and result not in self.choices:
            raise SettingError(f"{self.name}: must be one of {', '.join(self.choices)},"
                               f" not {result!r}")
        if self.validate is not None:
            try:
                self.validate(result)
            except ValueError as exc:
                raise SettingError(f"{self.name}: {exc}") from None
        return result


SETTINGS: dict[str, Setting] = {s.name: s for s in [
    Setting("tag_threshold", float, "Score at or above which a message is tagged",
            lambda c: c.policy.tag_threshold, -100, 1000),
    Setting("reject_threshold", float, "Score at or above which a message is rejected",
            lambda c: c.policy.reject_threshold, -100, 1000),
    Setting("tag_phrase", str, "Phrase put in front of the subject of tagged mail",
            lambda c: c.policy.tag_phrase),
    Setting("reject_text", str, "Text added to every reject reply (e.g. whom to call)",
            lambda c: c.policy.reject_text),
    Setting("archive_retention_days", int, "Days every message is kept in the archive",
            lambda c: c.policy.archive_retention_days, 1, 90),
    # Defenses (checks/dnsbl.py, uribl.py, greylist.py, harvest.py, authentication.py).
    Setting("dnsbl_zones", list, "DNS blocklists for the client address: ZONE [name=LABEL]"
            " [CODES=reject|SCORE ...] (e.g. zen.spamhaus.org 127.0.0.2-11=reject)",
            lambda c: list(c.defenses.dnsbl_zones), validate=validate_zones),
    Setting("uribl_zones", list, "URI blocklists for web addresses in the body, same form"
            " (default action: a score)", lambda c: list(c.defenses.uribl_zones),
            validate=validate_zones),
    Setting("greylisting", bool, "TempFail first-time senders (client network, sender,"
            " recipient) until they retry", lambda c: c.defenses.greylisting),
    Setting("greylist_tagged", bool, "TempFail messages scoring between Tag and Reject"
            " from senders that have not yet retried", lambda c: c.defenses.greylist_tagged),
    Setting("greylist_delay", int, "Seconds a greylisted sender must wait before retrying",
            lambda c: c.defenses.greylist_delay, 0, 86400),
    Setting("greylist_window", int, "Hours within which the retry must come",
            lambda c: c.defenses.greylist_window, 1, 24 * 30),
    Setting("greylist_awl_passes", int, "Retries passed after which a client network is"
            " no longer greylisted (0: never)", lambda c: c.defenses.greylist_awl_passes,
            0, 10000),
    Setting("greylist_expiry_days", int, "Days an unused passed sender is remembered",
            lambda c: c.defenses.greylist_expiry_days, 1, 365),
    Setting("recipient_delimiter", str, "Characters that end a user's name in a subaddress:"
            " with +, user+tag@domain is user@domain for list validation, greylisting"
            " and the black and white lists (empty: none)", lambda c: DEFAULT_RECIPIENT_DELIMITER,
            validate=_check_delimiter),
    Setting("harvest_threshold", int, "Invalid recipients from one client before it is"
            " refused as an address harvester (0: off)",
            lambda c: c.defenses.harvest_threshold, 0, 100000),
    Setting("harvest_window", int, "Minutes in which invalid recipients are counted",
            lambda c: c.defenses.harvest_window, 1, 24 * 60),
    Setting("harvest_block", int, "Minutes a harvesting client is refused",
            lambda c: c.defenses.harvest_block, 1, 7 * 24 * 60),
    Setting("harvest_action", str, "How a harvesting client is refused: tempfail (451) or"
            " reject (550)", lambda c: c.defenses.harvest_action,
            choices=("tempfail", "reject")),
    Setting("sender_authentication", bool, "Check SPF, DKIM and DMARC of inbound mail",
            lambda c: c.defenses.sender_authentication),
    Setting("blocked_extensions", list,
            "Attachment types rejected by file name or detected content, also inside archives"
            " (e.g. exe, scr, js)", lambda c: list(DEFAULT_BLOCKED_EXTENSIONS)),
    Setting("reject_encrypted_archives", bool,
            "Reject encrypted archives whose password is not in the message, and other archive"
            " content that cannot be scanned",
            lambda c: False),
    Setting("office_macros", str, "Office documents with macros: reject, score (adds to the"
            " spam score) or accept", lambda c: "score",
            choices=("reject", "score", "accept")),
]}


def check_together(values: dict[str, Any]) -> None:
    """The rules that tie settings to each other (SettingError saying which is broken),
    for the stored values and the configuration file's seeds alike."""
    if values["tag_threshold"] >= values["reject_threshold"]:
        raise SettingError("tag_threshold must be below reject_threshold")
    # A retry passes only between the delay and the end of the window, and MTAs back off
    # to an hour or more between attempts: with no room left (a delay of 3600 s in a
    # window of 1 hour), every retry came too early or found its attempt forgotten, and
    # no new sender's mail was ever let through.
    if values["greylist_delay"] * 2 > values["greylist_window"] * 3600:
        raise SettingError(
            f"greylist_delay ({values['greylist_delay']} s) must be at most half of"
            f" greylist_window ({values['greylist_window']} h), or retries find no time"
            " to pass in")


def recipient_delimiter(store: Store) -> str:
    """The recipient_delimiter in force, for look-ups that have the store but no snapshot
    (the valid-address list's); it has no seed in the configuration file."""
    stored = store.scalar("SELECT value FROM settings WHERE key = ?", ("recipient_delimiter",))
    return DEFAULT_RECIPIENT_DELIMITER if stored is None else str(json.loads(stored))


def get_settings(store: Store, config: Config) -> dict[str, Any]:
    """Every setting's current value: stored, else from the configuration file."""
    stored = {r["key"]: json.loads(r["value"]) for r in store.query("SELECT * FROM settings")}
    return {name: stored.get(name, s.default(config)) for name, s in SETTINGS.items()}


def set_settings(store: Store, config: Config, changes: dict[str, Any]) -> dict[str, Any]:
    """Validate and store several settings at once (all or none)."""
    current = get_settings(store, config)
    values: dict[str, Any] = {}
    for name, raw in changes.items():
        if name not in SETTINGS:
            raise SettingError(f"unknown setting {name!r}")
        values[name] = SETTINGS[name].coerce(raw)
    merged = current | values
    check_together(merged)
    with store.transaction():
        for name, value in values.items():
            store.execute("INSERT INTO settings (key, value) VALUES (?, ?)"
                          " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                          (name, json.dumps(value)))
        store.bump_generation()
    return merged
