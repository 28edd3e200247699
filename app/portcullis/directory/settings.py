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

from portcullis.config import Config
from portcullis.store import Store


class SettingError(ValueError):
    """A setting name or value that cannot be used."""


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type                       # bool, int, float, str or list (of str)
    help: str
    default: Callable[[Config], Any]
    minimum: float | None = None
    maximum: float | None = None

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
                result = self.kind(value)
        except (TypeError, ValueError):
            raise SettingError(
                f"{self.name}: expected {self.kind.__name__}, got {value!r}") from None
        if isinstance(result, str) and any(c in result for c in "\r\n\0"):
            raise SettingError(f"{self.name}: must be a single line")
        if self.minimum is not None and result < self.minimum:
            raise SettingError(f"{self.name}: must be at least {self.minimum}")
        if self.maximum is not None and result > self.maximum:
            raise SettingError(f"{self.name}: must be at most {self.maximum}")
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
]}


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
    if merged["tag_threshold"] >= merged["reject_threshold"]:
        raise SettingError("tag_threshold must be below reject_threshold")
    with store.transaction():
        for name, value in values.items():
            store.execute("INSERT INTO settings (key, value) VALUES (?, ?)"
                          " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                          (name, json.dumps(value)))
        store.bump_generation()
    return merged
