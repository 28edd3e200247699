"""What a bundle can update, one class per ``target``, each with the same three steps:

- ``installed_version()`` — what runs now (the anti-rollback floor),
- ``check(manifest)`` — payload rules, before a single file is hashed,
- ``apply(bundle)`` — install, make live, health check, and undo on failure.

``installed_version`` and ``check`` only read, so the unprivileged agent runs them to turn
bad bundles away early; ``apply`` runs in root's installer, which repeats every check.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portcullis import config as appliance_config
from portcullis.firewall.nft import FirewallError
from portcullis.firewall.ruleset import SiteValues
from portcullis.update import hostkeys, keys
from portcullis.update.agentconfig import AgentConfig
from portcullis.update.bundle import (
    BundleRejected,
    HealthCheck,
    Manifest,
    VerifiedBundle,
    verify_bundle,
)
from portcullis.update.clamav import (
    ClamavDatabase,
    ClamdError,
    InstalledSignatures,
    SignatureError,
    check_signature_name,
    new_backup_name,
)
from portcullis.update.releases import InstallError, Releases, Wheel, choose_pip
from portcullis.update.restart import CheckResult, restart_services, run_health_check
from portcullis.update.state import Pending, StateError, UpdateState, write_atomically
from portcullis.update.versions import VersionError, parse_version

log = logging.getLogger("portcullis.update.installer")

TRUST_ROOT_FILE = "trust.json"
# In the state directory, while an update is being judged: a link to the release that ran
# before it, whose agent the boot unit runs to undo an update cut off (a new release may
# not even start), and what the target keeps to undo it (a config update: the files it
# replaces; a clamav update: where the previous signature files are).
FALLBACK_LINK = "fallback"
ASIDE = "aside.json"
MAX_TRUST_ROOT_BYTES = 64 * 1024
_WHEEL = re.compile(r"(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+"
                    r"\.whl")


@dataclass
class Outcome:
    """What happened to one bundle; the receiver records it and tells the vendor."""

    outcome: str                        # applied | rejected | rolled-back | failed
    reason: str = ""
    target: str = ""
    version: str = ""
    previous: str = ""
    signed_by: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reason": self.reason, "target": self.target,
                "version": self.version, "previous": self.previous,
                "signed_by": self.signed_by}


def _flat_names(manifest: Manifest) -> list[str]:
    names = [f.path for f in manifest.files]
    nested = [n for n in names if "/" in n]
    if nested:
        raise BundleRejected(f"{manifest.target} bundle holds a nested path {nested[0]!r}")
    if not names:
        raise BundleRejected(f"{manifest.target} bundle holds no files")
    return names


def _joined(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


class Target:
    name = ""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.state = UpdateState(config.state_dir)

    def installed_version(self) -> str | None:
        return self.state.installed(self.name)

    def check(self, manifest: Manifest) -> None:
        raise NotImplementedError

    def apply(self, bundle: VerifiedBundle) -> Outcome:
        raise NotImplementedError

    def recover(self, pending: Pending, *, restart: bool) -> str:
        """Undo ``pending``, an update of this target cut off before it was judged;
        what was done ("" if nothing)."""
        return ""

    # -- shared steps ---------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {"PORTCULLIS_CONFIG": str(self.config.portcullis_config)}

    def _default_check(self) -> HealthCheck:
        return HealthCheck(self.config.health_command, self.config.health_timeout)

    def _go_live(self, check: HealthCheck | None) -> CheckResult:
        """Restart the services and run the health check; never raises, so the caller
        always gets to undo a failed update."""
        try:
            return self._restart_and_check(check)
        except Exception as exc:  # whatever broke, the update is not live
            log.exception("restart or health check failed")
            return CheckResult(False, f"internal error: {exc}")

    def _restart_and_check(self, check: HealthCheck | None) -> CheckResult:
        started = time.monotonic()
        restarted = restart_services(self.config.restart_command, self.config.services,
                                     self._env())
        log.info("restarted %s: %s (%.1f s)", " ".join(self.config.services) or "nothing",
                 "ok" if restarted.ok else restarted.detail, time.monotonic() - started)
        if not restarted.ok or check is None:
            return restarted
        started = time.monotonic()
        result = run_health_check(check, bin_dir=self.config.current_link / "bin",
                                  user=self.config.health_user, env=self._env())
        log.info("health check %s: %s (%.1f s)", " ".join(check.command),
                 "passed" if result.ok else result.detail, time.monotonic() - started)
        return result

    def _keep_aside(self, document: dict[str, Any]) -> None:
        """Keep ``document`` (what undoing the pending update needs) until it is judged."""
        # Root's alone: a configuration holds secrets.
        write_atomically(self.config.state_dir / ASIDE, json.dumps(document).encode(), 0o600)

    def _kept_aside(self) -> dict[str, Any] | None:
        """What ``_keep_aside`` kept (None: nothing); StateError if it is damaged."""
        path = self.config.state_dir / ASIDE
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateError(f"{path}: unreadable: {exc}") from None
        if not isinstance(document, dict):
            raise StateError(f"{path}: unreadable: not an object")
        return document

    def _undone(self, note: str, *, restart: bool) -> str:
        """``note`` on an undone update, after restarting the services on what runs again
        if they are running (not at boot, where they start after)."""
        if restart:
            back = self._go_live(self._default_check())
            if not back.ok:
                note += f" (unhealthy too: {back.detail})"
        return note

    def _outcome(self, bundle: VerifiedBundle, outcome: str, reason: str = "",
                 previous: str | None = None) -> Outcome:
        return Outcome(outcome, reason, self.name, bundle.manifest.version,
                       previous or "", bundle.signed_by)


class AppTarget(Target):
    """The Portcullis software: wheels installed into a new release venv."""

    name = "app"

    def __init__(self, config: AgentConfig) -> None:
        super().__init__(config)
        self.releases = Releases(config.releases_dir, config.current_link)

    def installed_version(self) -> str | None:
        current = self.releases.current()
        pending = self.state.pending()
        if pending is not None and pending.target == self.name and current == pending.version:
            current = pending.previous or None   # cut off unjudged: no floor until recovered
        candidates = [v for v in (self.state.installed(self.name), current) if v]
        return max(candidates, key=parse_version) if candidates else None

    def app_wheel(self, manifest: Manifest) -> str:
        names = _flat_names(manifest)
        apps = []
        for name in names:
            match = _WHEEL.fullmatch(name)
            if not match:
                raise BundleRejected(f"app bundle file {name!r} is not a wheel")
            if match["name"].lower().replace("-", "_") == "portcullis":
                apps.append((name, match["version"]))
        if len(apps) != 1:
            raise BundleRejected("an app bundle must hold exactly one portcullis wheel")
        name, version = apps[0]
        try:
            same = parse_version(version) == parse_version(manifest.version)
        except VersionError:
            same = False
        if not same:
            raise BundleRejected(f"wheel {name} does not match the manifest version "
                                 f"{manifest.version}")
        return name

    def bundle_pip_wheel(self, manifest: Manifest) -> str | None:
        """The pip wheel the bundle carries to install with (a newer pip), if any."""
        pips = [name for name in _flat_names(manifest)
                if (match := _WHEEL.fullmatch(name)) and match["name"].lower() == "pip"]
        if len(pips) > 1:
            raise BundleRejected("an app bundle may hold one pip wheel, not "
                                 + ", ".join(sorted(pips)))
        return pips[0] if pips else None

    def check(self, manifest: Manifest) -> None:
        self.app_wheel(manifest)
        self.bundle_pip_wheel(manifest)

    def wheels(self, bundle: VerifiedBundle) -> list[Wheel]:
        """What the release is built from: every wheel of the bundle but its pip, pinned
        to the sha256 the signed manifest gives it."""
        carried_pip = self.bundle_pip_wheel(bundle.manifest)
        wheels = []
        for entry in bundle.manifest.files:
            match = _WHEEL.fullmatch(entry.path)
            if match and entry.path != carried_pip:
                wheels.append(Wheel(bundle.payload[entry.path], match["name"],
                                    match["version"], entry.sha256))
        return wheels

    def apply(self, bundle: VerifiedBundle) -> Outcome:
        manifest = bundle.manifest
        previous = self.releases.current()
        carried = self.bundle_pip_wheel(manifest)
        started = time.monotonic()
        try:
            # The bundle's pip is covered by its signed manifest like every file it carries,
            # but it is used only if newer than the appliance's own.
            pip_wheel, pip_note = choose_pip(bundle.payload[carried] if carried else None,
                                             self.config.pip_wheel)
            if pip_note:
                log.info("release %s: %s", manifest.version, pip_note)
            self.releases.prepare(manifest.version, self.wheels(bundle), pip_wheel)
        except InstallError as exc:
            return self._outcome(bundle, "failed", str(exc), previous)
        log.info("release %s built (%.1f s); switching from %s", manifest.version,
                 time.monotonic() - started, previous)
        # Until it is judged, a power cut must not leave the new release running unchecked
        # (and, being current, the floor no older bundle may go below): recover() undoes it.
        begin_pending(self.config, Pending(self.name, manifest.version, previous or ""))
        outcome = self._switch_and_judge(bundle, previous, pip_note)
        end_pending(self.config)  # not on an exception: the next installation recovers
        return outcome

    def _switch_and_judge(self, bundle: VerifiedBundle, previous: str | None,
                          pip_note: str) -> Outcome:
        manifest = bundle.manifest
        self.releases.switch(manifest.version)
        live = self._go_live(manifest.health_check or self._default_check())
        if live.ok:
            self.state.record(self.name, manifest.version)
            self.releases.prune(self.config.keep_releases, {manifest.version, previous or ""})
            return self._outcome(bundle, "applied", _joined(live.detail, pip_note), previous)
        reason = _joined(f"health check failed: {live.detail}", pip_note)
        if previous is None:
            return self._outcome(bundle, "failed", reason + "; no previous release", previous)
        self.releases.switch(previous)
        back = self._go_live(self._default_check())
        self.releases.remove(manifest.version)
        if not back.ok:
            reason += f"; the previous release {previous} is unhealthy too: {back.detail}"
        return self._outcome(bundle, "rolled-back", reason, previous)

    def recover(self, pending: Pending, *, restart: bool) -> str:
        if self.releases.current() != pending.version or not pending.previous \
                or self.state.installed(self.name) == pending.version:
            return ""   # never went live, already undone, or judged healthy
        self.releases.switch(pending.previous)
        self.releases.remove(pending.version)
        return self._undone(f"app {pending.version} was cut off before its health check "
                            f"passed: {pending.previous} runs again", restart=restart)


class ConfigTarget(Target):
    """Configuration files next to portcullis.toml (only the names agent.toml allows)."""

    name = "config"

    def check(self, manifest: Manifest) -> None:
        for name in _flat_names(manifest):
            if name not in self.config.config_files:
                raise BundleRejected(f"config bundle may not replace {name!r} (allowed: "
                                     f"{', '.join(self.config.config_files)})")

    def _validate(self, name: str, source: Path) -> None:
        if name != self.config.portcullis_config.name:
            return
        try:
            raw = tomllib.loads(source.read_text(encoding="utf-8"))
            parsed = appliance_config.parse(raw, self.config.portcullis_config)
            # The services' health check does not look at the firewall: [firewall] values
            # it refuses would surface only at its next load, which then falls back to
            # the ruleset's default vendor netblocks (the vendor's own locked out).
            SiteValues.from_config(parsed.firewall)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BundleRejected(f"config file {name}: not valid TOML: {exc}") from None
        except (appliance_config.ConfigError, FirewallError) as exc:
            raise BundleRejected(f"config file {name}: {exc}") from None

    def apply(self, bundle: VerifiedBundle) -> Outcome:
        directory = self.config.portcullis_config.parent
        previous = self.installed_version()
        for name, source in bundle.payload.items():
            self._validate(name, source)
        saved: dict[str, bytes | None] = {}
        for name in bundle.payload:
            target = directory / name
            saved[name] = target.read_bytes() if target.exists() else None
        # Until it is judged, a power cut must not leave the services to start on a new
        # (or half-written) configuration nobody checked: recover() puts these back.
        begin_pending(self.config, Pending(self.name, bundle.manifest.version, previous or ""))
        self._set_aside(saved)
        outcome = self._write_and_judge(bundle, saved, previous)
        end_pending(self.config)  # not on an exception: the next installation recovers
        return outcome

    def _write_and_judge(self, bundle: VerifiedBundle, saved: dict[str, bytes | None],
                         previous: str | None) -> Outcome:
        directory = self.config.portcullis_config.parent
        owners = {name: _owner_and_mode(directory / name, directory) for name in saved}
        try:
            for name, source in bundle.payload.items():
                mode, owner = owners[name]
                write_atomically(directory / name, source.read_bytes(), mode, owner=owner)
        except OSError as exc:  # some files may be new already: undo as for a failed check
            live, reason = CheckResult(False, str(exc)), f"writing the configuration: {exc}"
        else:
            live = self._go_live(bundle.manifest.health_check or self._default_check())
            reason = f"health check failed: {live.detail}"
        if live.ok:
            self.state.record(self.name, bundle.manifest.version)
            return self._outcome(bundle, "applied", live.detail, previous)
        log.error("config %s failed (%s); restoring the previous configuration",
                  bundle.manifest.version, reason)
        try:
            self._restore(saved)
        except OSError as exc:
            return self._outcome(bundle, "failed", f"{reason}; restoring the previous "
                                 f"configuration failed too: {exc}", previous)
        back = self._go_live(self._default_check())
        if not back.ok:
            reason += f"; the previous configuration is unhealthy too: {back.detail}"
        return self._outcome(bundle, "rolled-back", reason, previous)

    def _restore(self, saved: dict[str, bytes | None]) -> None:
        """Put the files back as ``saved`` has them (None: there was none)."""
        directory = self.config.portcullis_config.parent
        for name, content in saved.items():
            if content is None:
                (directory / name).unlink(missing_ok=True)
            else:
                mode, owner = _owner_and_mode(directory / name, directory)
                write_atomically(directory / name, content, mode, owner=owner)

    def _set_aside(self, saved: dict[str, bytes | None]) -> None:
        self._keep_aside({name: None if content is None else base64.b64encode(content).decode()
                          for name, content in saved.items()})

    def _set_aside_earlier(self) -> dict[str, bytes | None] | None:
        """What ``_set_aside`` kept (None: nothing); StateError if it is damaged."""
        document = self._kept_aside()
        if document is None:
            return None
        try:
            return {name: None if text is None else base64.b64decode(text, validate=True)
                    for name, text in document.items() if name in self.config.config_files}
        except (ValueError, TypeError) as exc:
            raise StateError(f"{self.config.state_dir / ASIDE}: unreadable: {exc}") from None

    def recover(self, pending: Pending, *, restart: bool) -> str:
        saved = self._set_aside_earlier()
        if saved is None or self.state.installed(self.name) == pending.version:
            return ""   # nothing was replaced yet, or judged healthy before it stopped
        self._restore(saved)
        return self._undone(f"config {pending.version} was cut off before its health check "
                            "passed: the previous configuration is back", restart=restart)


class ClamavTarget(Target):
    """ClamAV signature files for clamd's database directory."""

    name = "clamav"

    def database(self) -> ClamavDatabase:
        return ClamavDatabase(self.config.clamav_database_dir, self.config.clamd_socket,
                              self.config.clamscan)

    def check(self, manifest: Manifest) -> None:
        for name in _flat_names(manifest):
            try:
                check_signature_name(name)
            except SignatureError as exc:
                raise BundleRejected(str(exc)) from None

    def apply(self, bundle: VerifiedBundle) -> Outcome:
        database = self.database()
        previous = self.installed_version()
        started = time.monotonic()
        try:
            database.validate(bundle.payload)
        except SignatureError as exc:
            return self._outcome(bundle, "rejected", str(exc), previous)
        try:
            database.validate_installed(bundle.payload)
        except (SignatureError, OSError) as exc:   # the bundle loads: the directory does not
            return self._outcome(bundle, "failed", f"with the signature files in "
                                 f"{database.directory}: {exc}", previous)
        log.info("signature files load (%.1f s)", time.monotonic() - started)
        backup = new_backup_name()
        # Until it is judged, a power cut must not leave root's backup directory in clamd's
        # and the new files unrecorded: recover() rolls back (or completes) with this.
        begin_pending(self.config, Pending(self.name, bundle.manifest.version, previous or ""))
        self._keep_aside({"backup": backup, "new": sorted(
            name for name in bundle.payload if not os.path.lexists(database.directory / name))})
        try:
            installed = database.install(bundle.payload, backup)
        except OSError as exc:   # a full disk: install() put back what it had replaced
            outcome = self._outcome(bundle, "failed", f"appliance cannot install the "
                                    f"signature files in {database.directory}: {exc}", previous)
        else:
            outcome = self._install_and_judge(bundle, installed, previous)
        end_pending(self.config)  # not on an exception: the next installation recovers
        return outcome

    def _install_and_judge(self, bundle: VerifiedBundle, installed: InstalledSignatures,
                           previous: str | None) -> Outcome:
        database = self.database()
        try:
            started = time.monotonic()
            reloaded = database.reload()
            log.info("clamd reloaded: %s (%.1f s)", reloaded, time.monotonic() - started)
            check = bundle.manifest.health_check
            live = run_health_check(check, bin_dir=self.config.current_link / "bin",
                                    user=self.config.health_user, env=self._env()) \
                if check else CheckResult(True, "")
        except ClamdError as exc:
            reloaded, live = True, CheckResult(False, str(exc))
        if live.ok:
            self.state.record(self.name, bundle.manifest.version)  # before the backup goes
            installed.commit()
            note = "" if reloaded else "clamd is not running; it loads them when it starts"
            return self._outcome(bundle, "applied", note or live.detail, previous)
        installed.rollback()
        try:
            database.reload()
        except ClamdError as exc:
            live = CheckResult(False, f"{live.detail}; reloading the previous files: {exc}")
        return self._outcome(bundle, "rolled-back", f"health check failed: {live.detail}",
                             previous)

    def recover(self, pending: Pending, *, restart: bool) -> str:
        kept = self._kept_aside()
        if kept is None:
            return ""   # nothing was installed yet
        try:
            installed = self.database().resume(str(kept["backup"]), list(kept["new"]))
        except (SignatureError, KeyError, TypeError) as exc:
            raise StateError(f"{self.config.clamav_database_dir}: cannot undo signature "
                             f"files: {exc}") from None
        if installed is None:
            return ""   # committed or rolled back before it stopped
        if self.state.installed(self.name) == pending.version:
            installed.commit()   # judged healthy: only the previous files were left to go
            return f"clamav {pending.version} had passed: removed the previous files kept"
        installed.rollback()
        note = (f"clamav {pending.version} was cut off before its health check passed: the "
                "previous signature files are back")
        if restart:   # at boot clamd starts after this and reads them
            try:
                self.database().reload()
            except ClamdError as exc:
                note += f" (reloading clamd: {exc})"
        return note


class TrustRootTarget(Target):
    """Key rotation: a new trust root, signed by enough current keys *and* new keys."""

    name = "trust-root"

    def installed_version(self) -> str | None:
        return str(keys.load_trust_root(self.config.trust_root).version)

    def check(self, manifest: Manifest) -> None:
        if [f.path for f in manifest.files] != [TRUST_ROOT_FILE]:
            raise BundleRejected(f"a trust-root bundle holds exactly one file, {TRUST_ROOT_FILE}")
        if manifest.files[0].size > MAX_TRUST_ROOT_BYTES:
            raise BundleRejected(f"{TRUST_ROOT_FILE} is too large")

    def apply(self, bundle: VerifiedBundle) -> Outcome:
        previous = self.installed_version()
        data = bundle.payload[TRUST_ROOT_FILE].read_bytes()
        try:
            new_root = keys.TrustRoot.from_bytes(data, "new trust root")
        except keys.TrustRootError as exc:
            return self._outcome(bundle, "rejected", str(exc), previous)
        if parse_version(str(new_root.version)) != parse_version(bundle.manifest.version):
            return self._outcome(bundle, "rejected", f"new trust root is version "
                                 f"{new_root.version}, the manifest says "
                                 f"{bundle.manifest.version}", previous)
        try:
            # The vendor must hold the new keys too: a typo in a key cannot lock it out.
            new_root.verify(bundle.manifest_bytes, bundle.signatures)
        except keys.SignatureRejected as exc:
            return self._outcome(bundle, "rejected", f"the new keys did not sign the rotation: "
                                 f"{exc}", previous)
        write_atomically(self.config.trust_root, new_root.to_bytes(), 0o644)
        self.state.record(self.name, str(new_root.version))
        return self._outcome(bundle, "applied", "trusted keys now: "
                             + ", ".join(new_root.key_ids), previous)


TARGET_CLASSES: dict[str, type[Target]] = {
    cls.name: cls for cls in (AppTarget, ConfigTarget, ClamavTarget, TrustRootTarget)
}


def targets(config: AgentConfig) -> dict[str, Target]:
    return {name: cls(config) for name, cls in TARGET_CLASSES.items()}


def verify(config: AgentConfig, bundle_path: Path, *, extract_to: Path | None = None,
           precheck: bool = False) -> tuple[VerifiedBundle, dict[str, Target]]:
    """Every check of a bundle against this appliance: its trust root, its host keys (is
    the bundle for this appliance?), each target's rules and what runs now.  The
    unprivileged agent (``precheck``), root's installer and ``verify`` all call this.
    Raises BundleRejected, or TrustRootError, StateError or HostKeyError when the
    appliance cannot verify updates at all."""

    def this_appliance() -> frozenset[str] | None:
        try:
            return hostkeys.appliance_identities(config.host_keys)
        except hostkeys.HostKeysUnreadable:
            if not precheck:
                raise
            # The host keys are root's alone (as the first-boot unit made them before it
            # left public halves 0644): root's installer, which repeats every check,
            # tells whether the bundle is for us.
            return None

    trust_root = keys.load_trust_root(config.trust_root)
    available = targets(config)
    verified = verify_bundle(
        bundle_path, trust_root, lambda name: available[name].installed_version(),
        check=lambda manifest: available[manifest.target].check(manifest),
        appliance=this_appliance, extract_to=extract_to)
    return verified, available


def recover(config: AgentConfig, *, restart: bool) -> str:
    """Undo an update cut off before it was judged (at boot before the services start,
    ``restart`` False, and by the installer before each installation); what was done."""
    pending = UpdateState(config.state_dir).pending()
    target = targets(config).get(pending.target) if pending else None
    note = target.recover(pending, restart=restart) if target and pending else ""
    end_pending(config)
    return note


def begin_pending(config: AgentConfig, pending: Pending) -> None:
    """Note ``pending`` before it goes live, with a link to the release running now."""
    UpdateState(config.state_dir).begin(pending)
    releases = Releases(config.releases_dir, config.current_link)
    running = releases.current()
    if running is not None:
        releases.point(config.state_dir / FALLBACK_LINK, running)


def end_pending(config: AgentConfig) -> None:
    UpdateState(config.state_dir).end()
    (config.state_dir / FALLBACK_LINK).unlink(missing_ok=True)
    (config.state_dir / ASIDE).unlink(missing_ok=True)


def installed_versions(config: AgentConfig) -> dict[str, str | None]:
    """What runs now, per target (read-only; the unprivileged agent may call it)."""
    return {name: target.installed_version() for name, target in targets(config).items()}


def _owner_and_mode(path: Path, directory: Path) -> tuple[int, tuple[int, int] | None]:
    """Keep an existing file's mode and owner; a new one gets the directory's group."""
    if path.exists():
        info = path.stat()
        return info.st_mode & 0o7777, (info.st_uid, info.st_gid) if os.geteuid() == 0 else None
    info = directory.stat()
    return 0o640, (0, info.st_gid) if os.geteuid() == 0 else None


def scratch_dir(parent: Path) -> Path:
    """A private working directory (0700) for one installation."""
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="install-", dir=parent))


def remove_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
