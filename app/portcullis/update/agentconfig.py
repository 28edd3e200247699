"""The update agent's own configuration: ``/etc/portcullis/update/agent.toml``, table [agent].

It is a file of its own (not a section of portcullis.toml) because configuration bundles
may replace portcullis.toml, and nothing pushed may change who is allowed to push.  The
file is parsed with the same strict rules as the main configuration (unknown keys and wrong
types are errors naming the key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from portcullis.addresses import AddressError, IPNetwork, vendor_network
from portcullis.config import ConfigError, parse_section, read_toml

DEFAULT_PATH = Path("/etc/portcullis/update/agent.toml")
ENV_VAR = "PORTCULLIS_UPDATE_CONFIG"
DEFAULT_NETBLOCKS = ("207.219.44.0/24", "209.89.117.0/24", "204.225.114.0/24")
# The public halves of the host keys sshd may serve (the ssh role makes the configured
# types at first boot); the ones that do not exist are skipped.
DEFAULT_HOST_KEYS = tuple(Path(f"/etc/ssh/ssh_host_{kind}_key.pub")
                          for kind in ("ed25519", "ecdsa", "rsa"))


@dataclass(frozen=True)
class AgentConfig:
    # The appliance configuration: store (update history), listeners (health check), and
    # the file configuration bundles replace.
    portcullis_config: Path = Path("/etc/portcullis/portcullis.toml")
    netblocks: tuple[str, ...] = DEFAULT_NETBLOCKS  # vendor addresses allowed to push
    trust_root: Path = Path("/etc/portcullis/update/trust.json")  # keys bundles must be signed by
    # Who this appliance is: a bundle that names an appliance (every config bundle does)
    # must name one of these host keys' fingerprints.
    host_keys: tuple[Path, ...] = DEFAULT_HOST_KEYS
    state_dir: Path = Path("/var/lib/portcullis-update")  # anti-rollback state (root's)
    spool_dir: Path = Path("/var/spool/portcullis-update")  # incoming bundles (the agent's)
    installer_socket: Path = Path("/run/portcullis-update/install.sock")  # root's installer
    installer_user: str = "pcupdate"   # the one account, besides root, the installer serves
    releases_dir: Path = Path("/opt/portcullis/releases")  # one Python venv per version
    current_link: Path = Path("/opt/portcullis/current")  # symlink to the running release
    keep_releases: int = 3             # older releases beyond this are removed
    # pip, as a wheel (releases have no pip of their own): what builds a release when the
    # app bundle carries no pip wheel of its own.  Root's; the mailfilter role puts it here.
    pip_wheel: Path = Path("/usr/lib/portcullis/pip.whl")
    config_files: tuple[str, ...] = ("portcullis.toml",)  # what a config bundle may replace
    clamav_database_dir: Path = Path("/var/lib/clamav")  # where signature bundles go
    clamd_socket: Path = Path("/run/clamav/clamd.ctl")  # told to RELOAD after they do
    clamscan: str = "clamscan"         # loads new signature files before they are installed
    restart_command: tuple[str, ...] = ("systemctl", "restart", "--")  # + services
    # Every unit running the release's code or reading portcullis.toml (the role's list).
    services: tuple[str, ...] = ("portcullis-firewall.service",
                                 "portcullis-firewall-monitor.service",
                                 "portcullis-tarpit.service", "portcullis-gateway.service",
                                 "portcullis-web.service")
    health_user: str = "portcullis"    # health checks run unprivileged, as this account
    # The check after an update whose bundle names none, and after switching back.
    health_command: tuple[str, ...] = ("portcullis-update-agent", "health")
    health_timeout: float = 60.0       # seconds a health check may take when a bundle says none
    max_bundle_bytes: int = 512 * 1024 * 1024
    # Left free where a bundle is written (/var: the store and archive live there too):
    # a bundle that would take it below this is refused before its bytes are read.
    min_free_bytes: int = 256 * 1024 * 1024
    receive_timeout: float = 3600.0    # a stalled transfer is abandoned after this

    def networks(self) -> list[IPNetwork]:
        """The vendor netblocks; AddressError if one is not acceptable (load says which)."""
        return [vendor_network(n) for n in self.netblocks]


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)


def load(explicit: str | os.PathLike[str] | None = None) -> AgentConfig:
    """Read agent.toml; ConfigError names the file and key when something is wrong."""
    path = config_path(explicit)
    raw = read_toml(path)
    unknown = set(raw) - {"agent"}
    if unknown:
        raise ConfigError(f"{path}: [{sorted(unknown)[0]}]: unknown section")
    table = raw.get("agent", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: agent: must be an [agent] table")
    config: AgentConfig = parse_section(AgentConfig, table, path, "agent")
    try:
        config.networks()
    except AddressError as exc:
        raise ConfigError(f"{path}: [agent] netblocks: {exc}") from None
    if not config.netblocks:
        raise ConfigError(f"{path}: [agent] netblocks: must list at least one network")
    for name in config.config_files:
        if "/" in name or name.startswith(".") or not name:
            raise ConfigError(f"{path}: [agent] config_files: {name!r} must be a plain name")
    if not config.health_command:
        raise ConfigError(f"{path}: [agent] health_command: must not be empty")
    if not config.restart_command:
        raise ConfigError(f"{path}: [agent] restart_command: must not be empty")
    return config
