"""Ed25519 signing keys and the appliance's root of trust.

The vendor signs; the appliance trusts what its *trust root* lists: a small JSON file with
one or more public keys and a threshold (how many distinct listed keys must sign).  The file
is replaced only by a ``trust-root`` bundle that the current keys signed (see install.py),
so a stolen SSH login alone can never teach an appliance a new key.

Every signature covers ``SIGNING_CONTEXT`` + the manifest bytes: the context keeps a
signature made for a bundle from being valid for anything else the same key might sign.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from portcullis.update.versions import VersionError, parse_version

SIGNING_CONTEXT = b"portcullis-update-manifest/1\n"
TRUST_ROOT_TYPE = "portcullis-trust-root/1"
PUBLIC_KEY_TYPE = "portcullis-signing-key/1"
KEY_ID_LENGTH = 16
MAX_TRUSTED_KEYS = 16


class KeyFileError(Exception):
    """A key file that cannot be used; the message says which and why."""


class TrustRootError(Exception):
    """A trust root file that is malformed; the appliance keeps the one it has."""


class SignatureRejected(Exception):
    """The signatures do not satisfy the trust root; the message is the reason."""


def strict_json(data: bytes | str) -> Any:
    """Parse a signed or trusted JSON document; ValueError if any object names a key twice.
    Python keeps the last value and other readers may keep the first: people who review a
    document before they sign it must see what the appliance will act on."""
    return json.loads(data, object_pairs_hook=_unique_keys)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice in one object")
        seen.add(key)
    return dict(pairs)


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: the start of its SHA-256."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_LENGTH]


def public_key_text(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error, UnicodeEncodeError, AttributeError) as exc:
        raise ValueError(f"not a base64 Ed25519 public key: {exc}") from None


@dataclass(frozen=True)
class TrustedKey:
    id: str
    public_key: Ed25519PublicKey
    name: str = ""

    def record(self) -> dict[str, str]:
        """The JSON form used in ``.pub`` files and in the trust root."""
        return {"type": PUBLIC_KEY_TYPE, "id": self.id, "name": self.name,
                "public_key": public_key_text(self.public_key)}

    @classmethod
    def from_record(cls, record: Any, where: str = "key") -> TrustedKey:
        if not isinstance(record, Mapping):
            raise ValueError(f"{where}: expected an object with id and public_key")
        unknown = set(record) - {"type", "id", "name", "public_key"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        public_key = public_key_from_text(record.get("public_key", ""))
        derived = key_id(public_key)
        given = record.get("id", derived)
        if given != derived:
            raise ValueError(f"{where}: id {given!r} does not belong to this key ({derived})")
        name = record.get("name", "")
        if not isinstance(name, str):
            raise ValueError(f"{where}: name must be text")
        return cls(derived, public_key, name)


@dataclass(frozen=True)
class TrustRoot:
    """The keys an appliance accepts signatures from, and how many must agree."""

    version: int
    threshold: int
    keys: tuple[TrustedKey, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or isinstance(self.version, bool) \
                or self.version < 1:
            raise TrustRootError("version must be a positive integer")
        try:
            # it is also the rotation bundle's version, compared as versions are
            parse_version(str(self.version))
        except VersionError:
            raise TrustRootError(f"version {self.version} is not one a bundle can carry "
                                 "(at most 9 digits)") from None
        if not self.keys:
            raise TrustRootError("lists no keys")
        if len(self.keys) > MAX_TRUSTED_KEYS:
            raise TrustRootError(f"lists more than {MAX_TRUSTED_KEYS} keys")
        if len({k.id for k in self.keys}) != len(self.keys):
            raise TrustRootError("lists the same key twice")
        if not isinstance(self.threshold, int) or isinstance(self.threshold, bool) \
                or not 1 <= self.threshold <= len(self.keys):
            raise TrustRootError(f"threshold must be between 1 and {len(self.keys)}")

    @property
    def key_ids(self) -> list[str]:
        return [k.id for k in self.keys]

    def to_bytes(self) -> bytes:
        document = {"type": TRUST_ROOT_TYPE, "version": self.version,
                    "threshold": self.threshold, "keys": [k.record() for k in self.keys]}
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "trust root") -> TrustRoot:
        try:
            document = strict_json(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TrustRootError(f"{source}: not JSON: {exc}") from None
        if not isinstance(document, dict) or document.get("type") != TRUST_ROOT_TYPE:
            raise TrustRootError(f"{source}: not a {TRUST_ROOT_TYPE} document")
        unknown = set(document) - {"type", "version", "threshold", "keys"}
        if unknown:
            raise TrustRootError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
        records = document.get("keys")
        if not isinstance(records, list):
            raise TrustRootError(f"{source}: keys must be a list")
        try:
            keys = tuple(TrustedKey.from_record(r, f"keys[{i}]") for i, r in enumerate(records))
            return cls(document.get("version"), document.get("threshold", 1), keys)
        except ValueError as exc:
            raise TrustRootError(f"{source}: {exc}") from None
        except TrustRootError as exc:
            raise TrustRootError(f"{source}: {exc}") from None

    def verify(self, message: bytes, signatures: Sequence[Mapping[str, Any]]) -> list[str]:
        """Check detached signatures over ``message``; return the trusted key ids that signed.

        Raises SignatureRejected unless at least ``threshold`` distinct trusted keys made a
        valid signature.  A listed key with a signature that does not verify is an error of
        its own: it means the manifest was altered after signing.
        """
        if not signatures:
            raise SignatureRejected("bundle is not signed")
        trusted = {k.id: k for k in self.keys}
        signed_by: list[str] = []
        strangers: list[str] = []
        for entry in signatures:
            kid, signature = entry.get("key_id"), entry.get("signature")
            if not isinstance(kid, str) or not isinstance(signature, str):
                raise SignatureRejected("malformed signature entry")
            key = trusted.get(kid)
            if key is None:
                strangers.append(kid)
                continue
            try:
                raw = base64.b64decode(signature.encode("ascii"), validate=True)
                key.public_key.verify(raw, SIGNING_CONTEXT + message)
            except (InvalidSignature, ValueError, binascii.Error, UnicodeEncodeError):
                raise SignatureRejected(
                    f"signature by trusted key {kid} does not match the manifest "
                    "(manifest altered after signing)") from None
            if kid not in signed_by:
                signed_by.append(kid)
        if len(signed_by) < self.threshold:
            if not signed_by:
                raise SignatureRejected(
                    "not signed by a trusted key (signed by "
                    f"{', '.join(strangers) or 'nobody'}; trusted: {', '.join(trusted)})")
            raise SignatureRejected(
                f"signed by {len(signed_by)} trusted key(s), {self.threshold} required")
        return signed_by


def load_trust_root(path: Path) -> TrustRoot:
    """Read the trust root file; TrustRootError if it is missing or malformed."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustRootError(f"{path}: cannot read: {exc.strerror}") from None
    return TrustRoot.from_bytes(data, str(path))


def make_trust_root(keys: Iterable[TrustedKey], threshold: int = 1,
                    version: int = 1) -> TrustRoot:
    return TrustRoot(version, threshold, tuple(keys))


# -- private keys (the vendor side) ------------------------------------------------------

def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def save_private_key(key: Ed25519PrivateKey, path: Path, passphrase: bytes | None) -> None:
    """Write a PKCS#8 PEM private key readable by its owner only (encrypted if given a
    passphrase); refuses to overwrite an existing key."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            encryption)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def load_private_key(path: Path, passphrase: bytes | None) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, passphrase or None)
    except TypeError:
        raise KeyFileError(f"{path}: key is encrypted: set the passphrase") from None
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a usable private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: Path) -> TrustedKey:
    """Read a ``.pub`` file written by ``portcullis-vendor keygen``."""
    try:
        record = strict_json(path.read_bytes())
        return TrustedKey.from_record(record, str(path))
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


def sign(key: Ed25519PrivateKey, message: bytes) -> dict[str, str]:
    """A detached signature entry over ``message`` (in the signing context)."""
    signature = key.sign(SIGNING_CONTEXT + message)
    return {"key_id": key_id(key.public_key()),
            "signature": base64.b64encode(signature).decode("ascii")}
