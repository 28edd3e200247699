"""A bundle's audience: built for one appliance (its SSH host key fingerprint), it installs
on that appliance only; a config bundle must name one; the signature covers the name."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from portcullis.update import hostkeys, keys
from portcullis.update.agentconfig import AgentConfig
from portcullis.update.bundle import (
    BundleReader,
    BundleRejected,
    Manifest,
    make_manifest,
    sign_bundle,
    verify_bundle,
    write_bundle,
)
from portcullis.update.targets import verify

pytestmark = pytest.mark.updates

NOW = datetime.now(UTC)
CONFIG = b'[smtp]\nlisten = "127.0.0.1:25"\n'


def host_key_line() -> str:
    """A fresh SSH host public key, as ssh-keygen writes NAME.pub."""
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " root@gw\n"


MINE = hostkeys.public_key_fingerprint(host_key_line())
OTHERS = hostkeys.public_key_fingerprint(host_key_line())


@pytest.fixture
def signer() -> keys.Ed25519PrivateKey:
    return keys.generate_signing_key()


def root_of(signer: keys.Ed25519PrivateKey) -> keys.TrustRoot:
    return keys.make_trust_root(
        [keys.TrustedKey(keys.key_id(signer.public_key()), signer.public_key())], 1)


def payload(tmp_path: Path, target: str) -> dict[str, Path]:
    name, content = ("portcullis.toml", CONFIG) if target == "config" else \
        ("portcullis-1.2.0-py3-none-any.whl", b"wheel")
    (tmp_path / name).write_bytes(content)
    return {name: tmp_path / name}


def bundle(tmp_path: Path, signer: keys.Ed25519PrivateKey, target: str = "config",
           audience: str | None = MINE, version: str = "1.2.0") -> Path:
    """A signed bundle of ``target`` for ``audience`` (None: every appliance)."""
    sources = payload(tmp_path, target)
    manifest = make_manifest(target, version, sources, created=NOW - timedelta(hours=1),
                             expires=NOW + timedelta(days=1), audience=audience)
    out = tmp_path / f"{target}.bundle"
    write_bundle(out, manifest, sources)
    sign_bundle(out, [signer])
    return out


def rewritten(path: Path, out: Path, **changes: object) -> Path:
    """``path`` with its manifest changed (None removes a field) and signatures kept."""
    with BundleReader(path) as reader:
        document = json.loads(reader.manifest_bytes)
        for field, value in changes.items():
            if value is None:
                document.pop(field, None)
            else:
                document[field] = value
        manifest = Manifest.from_bytes(json.dumps(document).encode())
        sources = {f.path: reader.open_payload(f.path) for f in manifest.files}
        write_bundle(out, manifest, sources, reader.signatures)
    return out


def check_here(path: Path, signer: keys.Ed25519PrivateKey,
               identities: frozenset[str] = frozenset({MINE})) -> object:
    return verify_bundle(path, root_of(signer), lambda target: "1", appliance=lambda: identities)


# -- the manifest check ------------------------------------------------------------------

def test_config_bundle_bound_to_this_appliance_installs(tmp_path, signer):
    # An appliance with several host keys (ed25519 and rsa, say) is any of them.
    verified = check_here(bundle(tmp_path, signer), signer,
                          frozenset({hostkeys.public_key_fingerprint(host_key_line()), MINE}))

    assert verified.manifest.audience == MINE
    assert verified.manifest.target == "config"


def test_config_bundle_bound_to_another_appliance_is_refused_naming_both(tmp_path, signer):
    with pytest.raises(BundleRejected) as refused:
        check_here(bundle(tmp_path, signer, audience=OTHERS), signer)

    assert str(refused.value) == (f"bundle is for another appliance (SSH host key {OTHERS}),"
                                  f" not this one ({MINE})")
    # The manifest rides along, so the refusal is recorded with target and version.
    assert (refused.value.manifest.target, refused.value.manifest.version) == ("config",
                                                                               "1.2.0")


def test_config_bundle_without_audience_is_refused(tmp_path, signer):
    # What an agent before audiences existed took, or one made without the vendor's tool:
    # signed, valid, but for no appliance in particular.
    unbound = rewritten(bundle(tmp_path, signer), tmp_path / "unbound", audience=None)
    sign_bundle(unbound, [signer])

    with pytest.raises(BundleRejected) as refused:
        check_here(unbound, signer)

    assert str(refused.value) == ("config bundle names no appliance (no audience): a config "
                                  "bundle must be built for one appliance")
    assert refused.value.manifest.target == "config"


def test_a_config_bundle_cannot_even_be_built_without_audience(tmp_path):
    with pytest.raises(ValueError, match="a config bundle is for one appliance"):
        make_manifest("config", "2", payload(tmp_path, "config"), created=NOW,
                      expires=NOW + timedelta(days=1))


def test_tampering_with_the_audience_breaks_the_signature(tmp_path, signer):
    for_others = bundle(tmp_path, signer, audience=OTHERS)
    retargeted = rewritten(for_others, tmp_path / "retargeted", audience=MINE)
    stripped = rewritten(for_others, tmp_path / "stripped", target="app", audience=None)

    for forged in (retargeted, stripped):
        with pytest.raises(BundleRejected, match="manifest altered after signing"):
            check_here(forged, signer)


def test_unbound_bundles_for_every_appliance_still_install(tmp_path, signer):
    path = bundle(tmp_path, signer, target="app", audience=None)

    verified = check_here(path, signer)

    assert verified.manifest.audience is None
    # Byte for byte what agents from before audiences accept (they refuse unknown fields):
    # the application update that brings them this check must still install on them.
    assert "audience" not in json.loads(verified.manifest_bytes)


def test_bundle_for_every_appliance_may_still_name_one_and_then_it_must_match(tmp_path,
                                                                           signer):
    (tmp_path / "mine").mkdir()
    (tmp_path / "theirs").mkdir()

    verified = check_here(bundle(tmp_path / "mine", signer, "app", MINE), signer)
    with pytest.raises(BundleRejected, match="bundle is for another appliance"):
        check_here(bundle(tmp_path / "theirs", signer, "app", OTHERS), signer)

    assert verified.manifest.audience == MINE


def test_the_appliance_reads_its_host_keys_only_for_a_bundle_that_names_one(tmp_path, signer):
    def no_host_key() -> frozenset[str]:
        raise hostkeys.HostKeyError("no SSH host key")

    verified = verify_bundle(bundle(tmp_path, signer, "app", None), root_of(signer),
                             lambda target: "1", appliance=no_host_key)
    assert verified.manifest.target == "app"
    with pytest.raises(hostkeys.HostKeyError):
        verify_bundle(bundle(tmp_path, signer), root_of(signer), lambda target: "1",
                      appliance=no_host_key)


def test_without_an_identity_only_bundles_for_every_appliance_pass(tmp_path, signer):
    with pytest.raises(BundleRejected, match=r"not this one \(no host key known\)"):
        verify_bundle(bundle(tmp_path, signer), root_of(signer), lambda target: "1")


@pytest.mark.parametrize("audience", [None, "", "MD5:aa:bb", "SHA256:short", 42,
                                      ["SHA256:" + "A" * 43], "sha256:" + "A" * 43,
                                      "SHA256:" + "A" * 42 + "=", "SHA256:" + "A" * 44])
def test_manifest_refuses_an_audience_that_is_not_a_fingerprint(tmp_path, audience):
    manifest = make_manifest("app", "1", payload(tmp_path, "app"), created=NOW,
                             expires=NOW + timedelta(days=1))
    document = json.loads(manifest.to_bytes())
    document["audience"] = audience

    with pytest.raises(ValueError, match="is not an SSH host key fingerprint"):
        Manifest.from_bytes(json.dumps(document).encode())


# -- the appliance's identity ----------------------------------------------------------

def test_host_key_fingerprint_is_the_one_openssh_prints(tmp_path):
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (openssh-client) is not installed")
    key = tmp_path / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    printed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(key) + ".pub"],
                             capture_output=True, text=True, check=True).stdout.split()[1]

    assert hostkeys.appliance_identities([Path(str(key) + ".pub")]) == {printed}


def test_identities_skip_absent_key_types_and_need_at_least_one(tmp_path):
    (tmp_path / "ed25519.pub").write_text(host_key_line())
    absent = tmp_path / "rsa.pub"

    found = hostkeys.appliance_identities([tmp_path / "ed25519.pub", absent])

    assert len(found) == 1 and next(iter(found)).startswith("SHA256:")
    with pytest.raises(hostkeys.HostKeyError, match="no SSH host key"):
        hostkeys.appliance_identities([absent])
    (tmp_path / "damaged.pub").write_text("ssh-ed25519 not-base64!\n")
    with pytest.raises(hostkeys.HostKeyError, match=r"damaged\.pub: the key is not base64"):
        hostkeys.appliance_identities([tmp_path / "ed25519.pub", tmp_path / "damaged.pub"])
    line = host_key_line().replace("ssh-ed25519", "ssh-rsa", 1)
    (tmp_path / "mislabelled.pub").write_text(line)
    with pytest.raises(hostkeys.HostKeyError, match="not a ssh-rsa key"):
        hostkeys.appliance_identities([tmp_path / "mislabelled.pub"])


def test_the_agent_checks_bundles_against_the_host_keys_agent_toml_names(tmp_path, signer):
    (tmp_path / "ssh_host_ed25519_key.pub").write_text(host_key_line())
    me = hostkeys.appliance_identities([tmp_path / "ssh_host_ed25519_key.pub"])
    (tmp_path / "trust.json").write_bytes(root_of(signer).to_bytes())
    config = AgentConfig(trust_root=tmp_path / "trust.json", state_dir=tmp_path / "state",
                         host_keys=(tmp_path / "ssh_host_ed25519_key.pub",
                                    tmp_path / "ssh_host_rsa_key.pub"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "theirs").mkdir()

    verified, _ = verify(config, bundle(tmp_path / "mine", signer, audience=min(me)))
    with pytest.raises(BundleRejected, match="bundle is for another appliance"):
        verify(config, bundle(tmp_path / "theirs", signer, audience=OTHERS))

    assert verified.manifest.audience in me


def root_only(monkeypatch, path: Path) -> None:
    """``path`` refuses this process, as a host key of mode 0600 refuses the agent."""
    real_open = Path.open

    def guarded(self: Path, *args: object, **kwargs: object) -> object:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)


def test_host_keys_only_root_may_read_leave_the_check_to_roots_installer(tmp_path, signer,
                                                                       monkeypatch):
    # The image's first-boot unit makes the public halves 0600: the unprivileged agent's
    # pre-check cannot tell; root's installer (not a pre-check) must, and refuses.
    public = tmp_path / "ssh_host_ed25519_key.pub"
    public.write_text(host_key_line())
    (tmp_path / "trust.json").write_bytes(root_of(signer).to_bytes())
    config = AgentConfig(trust_root=tmp_path / "trust.json", state_dir=tmp_path / "state",
                         host_keys=(public,))
    for_others = bundle(tmp_path, signer, audience=OTHERS)
    (tmp_path / "unbound").mkdir()
    unbound = rewritten(bundle(tmp_path / "unbound", signer), tmp_path / "unbound.bundle",
                        audience=None)
    sign_bundle(unbound, [signer])
    root_only(monkeypatch, public)

    verified, _ = verify(config, for_others, precheck=True)
    with pytest.raises(hostkeys.HostKeysUnreadable, match="Permission denied"):
        verify(config, for_others)
    with pytest.raises(BundleRejected, match="config bundle names no appliance"):
        verify(config, unbound, precheck=True)     # that needs no host key: refused at once

    assert verified.manifest.audience == OTHERS


# -- the vendor: the key push checks is the key the bundle names ----------------------------

def test_vendor_binds_to_the_host_key_known_hosts_pins_for_the_appliance(tmp_path):
    pytest.importorskip("paramiko")
    from portcullis_vendor.inventory import Appliance
    from portcullis_vendor.push import appliance_fingerprint

    first, second, other = host_key_line(), host_key_line(), host_key_line()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"192.0.2.10 {' '.join(first.split()[:2])}\n"
        f"192.0.2.10 {' '.join(second.split()[:2])}\n"       # same type: push uses the first
        f"[192.0.2.10]:2222 {' '.join(other.split()[:2])}\n")

    assert appliance_fingerprint(Appliance("gw1", "192.0.2.10"), known_hosts) == \
        hostkeys.public_key_fingerprint(first)
    assert appliance_fingerprint(Appliance("gw1b", "192.0.2.10", 2222), known_hosts) == \
        hostkeys.public_key_fingerprint(other)
    with pytest.raises(ValueError, match=r"no host key for 192\.0\.2\.99"):
        appliance_fingerprint(Appliance("gw9", "192.0.2.99"), known_hosts)


def test_vendor_refuses_to_build_a_config_bundle_for_no_appliance(tmp_path, capsys):
    from portcullis_vendor import cli

    (tmp_path / "portcullis.toml").write_bytes(CONFIG)

    status = cli.main(["build", "--target", "config", "--version", "2", "--out",
                       str(tmp_path / "config.bundle"), str(tmp_path / "portcullis.toml")])

    assert status == 2
    assert "a config bundle is for one appliance: name it with --inventory FILE --appliance" \
        in capsys.readouterr().err
    assert not (tmp_path / "config.bundle").exists()
