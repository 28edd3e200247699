"""The update bundle format and its verification, against hostile and broken input."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portcullis.update import keys, transfer
from portcullis.update.bundle import (
    BundleReader,
    BundleRejected,
    Manifest,
    StorageError,
    make_manifest,
    sign_bundle,
    verify_bundle,
    write_bundle,
)
from portcullis.update.versions import VersionError, is_newer, parse_version

pytestmark = pytest.mark.updates

NOW = datetime.now(UTC)


@pytest.fixture
def signer() -> keys.Ed25519PrivateKey:
    return keys.generate_signing_key()


def root_of(*private: keys.Ed25519PrivateKey, threshold: int = 1) -> keys.TrustRoot:
    return keys.make_trust_root(
        [keys.TrustedKey(keys.key_id(k.public_key()), k.public_key()) for k in private],
        threshold)


def make_bundle(tmp_path: Path, files: dict[str, bytes] | None = None, *,
                version: str = "1.2.0", expires: datetime | None = None,
                created: datetime | None = None) -> Path:
    files = files if files is not None else {"portcullis-1.2.0-py3-none-any.whl": b"wheel"}
    sources = {}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        sources[name] = tmp_path / name
    manifest = make_manifest("app", version, sources,
                             created=created or NOW - timedelta(hours=1),
                             expires=expires or NOW + timedelta(days=1))
    out = tmp_path / "bundle.tar"
    write_bundle(out, manifest, sources)
    return out


def verify(path: Path, root: keys.TrustRoot, installed: str | None = "1.0.0",
           extract_to: Path | None = None) -> object:
    return verify_bundle(path, root, lambda target: installed, extract_to=extract_to)


def raw_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_signed_bundle_verifies_and_extracts_its_files(tmp_path, signer):
    bundle = make_bundle(tmp_path)
    sign_bundle(bundle, [signer])
    out = tmp_path / "out"
    out.mkdir()

    verified = verify(bundle, root_of(signer), extract_to=out)

    assert verified.manifest.version == "1.2.0"
    assert verified.signed_by == [keys.key_id(signer.public_key())]
    assert (out / "portcullis-1.2.0-py3-none-any.whl").read_bytes() == b"wheel"


def test_unsigned_and_foreign_signatures_are_refused(tmp_path, signer):
    bundle = make_bundle(tmp_path)
    with pytest.raises(BundleRejected, match="bundle is not signed"):
        verify(bundle, root_of(signer))
    sign_bundle(bundle, [keys.generate_signing_key()])
    with pytest.raises(BundleRejected, match="not signed by a trusted key"):
        verify(bundle, root_of(signer))


def test_threshold_counts_distinct_trusted_keys(tmp_path, signer):
    other = keys.generate_signing_key()
    bundle = make_bundle(tmp_path)
    sign_bundle(bundle, [signer])
    sign_bundle(bundle, [signer])             # the same key twice is still one
    with pytest.raises(BundleRejected, match="signed by 1 trusted key"):
        verify(bundle, root_of(signer, other, threshold=2))
    sign_bundle(bundle, [other])
    assert len(verify(bundle, root_of(signer, other, threshold=2)).signed_by) == 2


def test_expired_and_not_newer_bundles_are_refused(tmp_path, signer):
    bundle = make_bundle(tmp_path, expires=NOW - timedelta(minutes=1))
    sign_bundle(bundle, [signer])
    with pytest.raises(BundleRejected, match="bundle expired at"):
        verify(bundle, root_of(signer))
    fresh = make_bundle(tmp_path)
    sign_bundle(fresh, [signer])
    with pytest.raises(BundleRejected, match=r"not newer than the installed 1\.2"):
        verify(fresh, root_of(signer), installed="1.2")


def test_a_bundle_created_far_ahead_of_the_appliance_clock_is_refused(tmp_path, signer):
    # created two years ahead, valid 400 days from then: installable for 3 years
    ahead = NOW + timedelta(days=730)
    bundle = make_bundle(tmp_path, created=ahead, expires=ahead + timedelta(days=399))
    sign_bundle(bundle, [signer])
    with pytest.raises(BundleRejected, match=r"bundle created .*, more than 30 days after "
                                             r"this appliance's clock"):
        verify(bundle, root_of(signer))


def test_a_bundle_from_a_vendor_whose_clock_is_ahead_of_the_appliance_passes(tmp_path, signer):
    # an appliance whose clock runs weeks behind still takes a fresh bundle
    ahead = NOW + timedelta(days=29)
    bundle = make_bundle(tmp_path, created=ahead, expires=ahead + timedelta(days=30))
    sign_bundle(bundle, [signer])
    assert verify(bundle, root_of(signer)).manifest.version == "1.2.0"


def test_a_bundle_valid_for_longer_than_the_maximum_is_refused(tmp_path, signer):
    # expiry stops a held-back bundle from being replayed later; an unbounded span
    # (created now, expires in 2126) would void that
    with pytest.raises(ValueError, match="at most 400 days"):
        make_bundle(tmp_path, expires=NOW + timedelta(days=400))  # created an hour ago
    bundle = make_bundle(tmp_path, expires=NOW + timedelta(days=399))
    with BundleReader(bundle) as reader:
        document = json.loads(reader.manifest_bytes)
    data = json.dumps({**document, "expires": "2126-01-01T00:00:00Z"}).encode()
    forever = raw_tar(tmp_path / "forever.tar", [
        (tarfile.TarInfo("manifest.json"), data),
        (tarfile.TarInfo("signatures.json"),
         json.dumps({"signatures": [keys.sign(signer, data)]}).encode())])

    with pytest.raises(BundleRejected, match=r"manifest: valid for \d+ days \(created .*, "
                                             r"expires 2126-01-01T00:00:00Z\): at most 400"):
        verify(forever, root_of(signer))
    sign_bundle(bundle, [signer])
    assert verify(bundle, root_of(signer)).manifest.version == "1.2.0"


@pytest.mark.parametrize("name", ["files/../../etc/passwd", "files/.hidden", "/etc/shadow",
                                  "files/a//b", "other.txt"])
def test_members_outside_the_payload_are_refused(tmp_path, name):
    bundle = raw_tar(tmp_path / "b.tar", [(tarfile.TarInfo("manifest.json"), b"{}"),
                                          (tarfile.TarInfo(name), b"x")])
    with pytest.raises(BundleRejected):
        verify(bundle, root_of(keys.generate_signing_key()))


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                                  tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.DIRTYPE])
def test_links_devices_and_directories_are_refused(tmp_path, kind):
    link = tarfile.TarInfo("files/evil")
    link.type, link.linkname = kind, "/etc/shadow"
    with pytest.raises(BundleRejected, match="not a regular file"):
        verify(raw_tar(tmp_path / "l.tar", [(link, b"")]), root_of(keys.generate_signing_key()))


def test_duplicates_are_refused(tmp_path):
    twice = [(tarfile.TarInfo("manifest.json"), b"{}"), (tarfile.TarInfo("manifest.json"), b"{}")]
    with pytest.raises(BundleRejected, match="twice"):
        verify(raw_tar(tmp_path / "d.tar", twice), root_of(keys.generate_signing_key()))


@pytest.mark.parametrize("tar_format", ["gnu", "posix"])
def test_a_sparse_member_is_refused_before_anything_is_extracted(tmp_path, signer,
                                                                tar_format):
    # A genuinely signed manifest listing a large file of zeros, the tar rewritten with
    # GNU tar --sparse: a few KiB on the wire that would extract to the whole file, so
    # a small push could fill /var.  Every member must hold its bytes.
    size = 64 * 1024 * 1024
    bundle = make_bundle(tmp_path, {"portcullis-1.2.0-py3-none-any.whl": b"wheel"})
    sign_bundle(bundle, [signer])
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with tarfile.open(bundle) as tar:
        tar.extractall(unpacked, filter="data")
    huge = unpacked / "files" / "zeros.db"
    with huge.open("wb") as file:
        file.truncate(size)
    with BundleReader(bundle) as reader:
        document = json.loads(reader.manifest_bytes)
    document["files"].append({"path": "zeros.db", "mode": 0o644, "size": size,
                              "sha256": hashlib.sha256(bytes(size)).hexdigest()})
    manifest = Manifest.from_bytes(json.dumps(document).encode())
    (unpacked / "manifest.json").write_bytes(manifest.to_bytes())
    sources = {f.path: unpacked / "files" / f.path for f in manifest.files}
    write_bundle(bundle, manifest, sources)
    sign_bundle(bundle, [signer])
    with tarfile.open(bundle) as tar:
        tar.extract("signatures.json", unpacked, filter="data")  # over the new manifest
    sparse = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", f"--format={tar_format}", "-cf", str(sparse), "-C",
                    str(unpacked), "manifest.json", "signatures.json",
                    "files/portcullis-1.2.0-py3-none-any.whl", "files/zeros.db"], check=True)
    assert sparse.stat().st_size < 64 * 1024
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(BundleRejected, match=r"'files/zeros\.db' is a sparse file"):
        verify(sparse, root_of(signer), extract_to=out)
    assert list(out.iterdir()) == []


def test_payload_must_match_the_manifest_exactly(tmp_path, signer):
    bundle = make_bundle(tmp_path)
    sign_bundle(bundle, [signer])
    with tarfile.open(bundle) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    extra = raw_tar(tmp_path / "extra.tar", [*members, (tarfile.TarInfo("files/more"), b"x")])
    with pytest.raises(BundleRejected, match="not listed in the manifest"):
        verify(extra, root_of(signer))
    missing = raw_tar(tmp_path / "missing.tar", members[:2])
    with pytest.raises(BundleRejected, match="listed in the manifest but missing"):
        verify(missing, root_of(signer))


def test_writing_and_signing_a_bundle_follow_no_link_at_a_temporary_name(
        tmp_path, signer, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    # the name the old code always used, and a name the temporary file is made to try
    # first (tempfile's private name source: the only way to have it "guessed")
    old_name = tmp_path / f".bundle.tar.{os.getpid()}.tmp"
    guessed = tmp_path / ".bundle.tar.guessed.tmp"
    for link in (old_name, guessed):
        link.symlink_to(victim)
    names = iter(["guessed", "fresh", "guessed", "fresher"])
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)

    bundle = make_bundle(tmp_path)
    sign_bundle(bundle, [signer])

    assert victim.read_bytes() == b"untouched"
    assert old_name.is_symlink() and guessed.is_symlink()
    assert not bundle.is_symlink() and bundle.stat().st_mode & 0o777 == 0o644
    verify(bundle, root_of(signer))
    assert not [p.name for p in tmp_path.iterdir()
                if p.name.endswith(".tmp") and p not in (old_name, guessed)]


def test_truncated_bundle_is_refused(tmp_path, signer):
    bundle = make_bundle(tmp_path, {"portcullis-1.2.0-py3-none-any.whl": b"w" * 50000})
    sign_bundle(bundle, [signer])
    data = bundle.read_bytes()
    bundle.write_bytes(data[:len(data) // 2])
    with pytest.raises(BundleRejected):
        verify(bundle, root_of(signer))


def test_manifest_rejects_unknown_fields_and_bad_values(tmp_path, signer):
    bundle = make_bundle(tmp_path)
    with tarfile.open(bundle) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    for change, reason in [({"colour": "red"}, "unknown field"),
                           ({"target": "kernel"}, "target 'kernel'"),
                           ({"version": "1.0-rc1"}, "not dotted numbers"),
                           ({"expires": "2020-01-01"}, "has no time zone")]:
        data = json.dumps({**manifest, **change}).encode()
        broken = raw_tar(tmp_path / "m.tar", [(tarfile.TarInfo("manifest.json"), data),
                                              (tarfile.TarInfo("signatures.json"), json.dumps(
                                                  {"signatures": [keys.sign(signer, data)]})
                                               .encode())])
        with pytest.raises(BundleRejected, match=reason):
            verify(broken, root_of(signer))


def test_versions_compare_by_number():
    assert parse_version("1.10") > parse_version("1.9")
    assert parse_version("1.0") == parse_version("1.0.0")
    assert is_newer("0.2.0", "0.1.9") and not is_newer("0.1", "0.1.0")
    assert is_newer("1", None)
    for bad in ("1.0rc1", "01.2", "", "1..2", "../1"):
        with pytest.raises(VersionError):
            parse_version(bad)


def test_trust_root_refuses_a_key_whose_id_is_not_its_own(signer):
    record = keys.TrustedKey(keys.key_id(signer.public_key()), signer.public_key()).record()
    document = {"type": keys.TRUST_ROOT_TYPE, "version": 1, "threshold": 1,
                "keys": [{**record, "id": "0123456789abcdef"}]}
    with pytest.raises(keys.TrustRootError, match="does not belong to this key"):
        keys.TrustRoot.from_bytes(json.dumps(document).encode())
    with pytest.raises(keys.TrustRootError, match="threshold"):
        keys.TrustRoot.from_bytes(json.dumps({**document, "keys": [record],
                                              "threshold": 2}).encode())


def test_transfer_reports_how_much_arrived_before_the_sender_went_away():
    source = io.BytesIO(transfer.header(100) + b"x" * 40)
    with pytest.raises(BundleRejected, match="received 40 of 100 bytes"):
        transfer.receive(source, io.BytesIO(), max_bytes=1000)
    with pytest.raises(BundleRejected, match="over the limit"):
        transfer.receive(io.BytesIO(transfer.header(2000)), io.BytesIO(), max_bytes=1000)
    with pytest.raises(BundleRejected, match="bad header"):
        transfer.receive(io.BytesIO(b"GET / HTTP/1.0\n"), io.BytesIO(), max_bytes=1000)


def test_huge_extended_tar_headers_are_refused_before_tarfile_reads_them(tmp_path):
    long_name = tarfile.TarInfo("files/" + "a" * 200_000)  # a GNU long name or a PAX path
    for form in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        with tarfile.open(tmp_path / "long.tar", "w", format=form) as tar:
            tar.addfile(long_name, io.BytesIO(b""))
        with pytest.raises(BundleRejected, match="extended tar header"):
            verify(tmp_path / "long.tar", root_of(keys.generate_signing_key()))
    # many headers each under the limit still add up
    with tarfile.open(tmp_path / "many.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for n in range(40):
            info = tarfile.TarInfo(f"files/{n}")
            info.pax_headers = {"comment": "c" * 60_000}
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(BundleRejected, match="in all"):
        verify(tmp_path / "many.tar", root_of(keys.generate_signing_key()))


def test_damaged_tar_numbers_and_nested_json_are_rejections_not_crashes(tmp_path):
    sparse = tarfile.TarInfo("files/s")
    sparse.pax_headers = {"GNU.sparse.map": "x,y", "GNU.sparse.size": "10"}
    bundle = raw_tar(tmp_path / "sparse.tar", [(tarfile.TarInfo("manifest.json"), b"{}"),
                                               (sparse, b"")])
    # refused by the header walk before tarfile parses the bad numbers
    with pytest.raises(BundleRejected, match="'files/s' is a sparse file"):
        verify(bundle, root_of(keys.generate_signing_key()))
    nested = b'{"signatures": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    bundle = raw_tar(tmp_path / "nested.tar", [(tarfile.TarInfo("manifest.json"), b"{}"),
                                               (tarfile.TarInfo("signatures.json"), nested)])
    with pytest.raises(BundleRejected, match="not JSON"):
        verify(bundle, root_of(keys.generate_signing_key()))


def tar_block(name: str, size: int, kind: bytes) -> bytes:
    """One ustar header, built by hand so it can say what tarfile would never write."""
    header = bytearray(512)
    header[0:len(name)] = name.encode()
    header[100:108] = b"0000644\0"
    header[108:116] = header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"%011o\0" % 0
    header[156:157] = kind
    header[257:265] = b"ustar\x0000"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + len(str(len(body)))
    length = len(body) + len(str(length))
    return str(length).encode() + body


def tar_with_extended_header(kind: bytes, records: bytes, payload: bytes = b"wheel") -> bytes:
    manifest = b"{}"
    return (tar_block("manifest.json", len(manifest), b"0") + padded(manifest)
            + tar_block("PaxHeaders/payload", len(records), kind) + padded(records)
            + tar_block("files/payload", len(payload), b"0") + padded(payload)
            + bytes(1024))


@pytest.mark.parametrize(("kind", "records", "reason"), [
    (b"x", pax_record("size", "1"), "'files/payload' has a PAX header that sets its size"),
    (b"x", pax_record("mtime", "1") + pax_record("GNU.sparse.size", "1048576"),
     r"'files/payload' is a sparse file \(PAX header GNU\.sparse\.size\)"),
    (b"x", pax_record("GNU.sparse.major", "1") + pax_record("GNU.sparse.name", "files/w"),
     r"'files/w' is a sparse file \(PAX header GNU\.sparse\.major\)"),
    (b"g", pax_record("size", "1"), "every following member has a PAX header"),
    (b"X", pax_record("mtime", "1"), r"'files/payload' has a Solaris extended header"),
    (b"x", b"9 size=1", "damaged"),
    (b"x", b"1_0 size=1\n", "damaged"),
])
def test_extended_headers_that_change_size_or_sparseness_are_refused_before_tarfile(
        tmp_path, kind, records, reason):
    # A PAX size makes tarfile read other bytes than the header walk skips and the
    # manifest sizes; GNU.sparse.* makes a sparse file; 'X' is Solaris' unchecked cousin.
    bundle = tmp_path / "hostile.tar"
    bundle.write_bytes(tar_with_extended_header(kind, records))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BundleRejected, match=reason):
        verify(bundle, root_of(keys.generate_signing_key()), extract_to=out)
    assert list(out.iterdir()) == []


def test_harmless_pax_headers_still_pass_the_header_walk(tmp_path):
    bundle = tmp_path / "plain.tar"
    bundle.write_bytes(tar_with_extended_header(b"x", pax_record("mtime", "1.5")))
    with BundleReader(bundle) as reader:
        assert reader.payload_paths() == {"payload"}


class FullDisk(io.BytesIO):
    def write(self, data: bytes) -> int:
        raise OSError(28, "No space left on device")


def test_a_full_disk_is_the_appliances_failure_not_a_damaged_bundle(tmp_path, signer,
                                                                     monkeypatch):
    with pytest.raises(StorageError, match="No space left"):
        transfer.receive(io.BytesIO(transfer.header(10) + b"x" * 10), FullDisk(), 1000)
    bundle = make_bundle(tmp_path)
    sign_bundle(bundle, [signer])
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk() if mode == "wb"
                        else real_fdopen(fd, mode))
    with pytest.raises(StorageError, match="No space left"):
        verify(bundle, root_of(signer), extract_to=tmp_path / "out")


def signed_manifest_bundle(tmp_path: Path, signer, manifest_bytes: bytes,
                           payload: dict[str, bytes]) -> Path:
    """A bundle around ``manifest_bytes`` as written, signed by ``signer``."""
    members = [(tarfile.TarInfo("manifest.json"), manifest_bytes),
               (tarfile.TarInfo("signatures.json"), json.dumps(
                   {"signatures": [keys.sign(signer, manifest_bytes)]}).encode())]
    members += [(tarfile.TarInfo(f"files/{name}"), data) for name, data in payload.items()]
    return raw_tar(tmp_path / "odd.tar", members)


def test_a_file_mode_written_as_a_fraction_is_refused_not_an_installer_crash(tmp_path,
                                                                           signer):
    # JSON's 420.0 equals 0o644 in Python: it passed the check, and root's installer then
    # died creating the file ("internal error") after the agent had let it through.
    bundle = make_bundle(tmp_path)
    with tarfile.open(bundle) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    manifest["files"][0]["mode"] = 420.0
    odd = signed_manifest_bundle(tmp_path, signer, json.dumps(manifest).encode(),
                                 {"portcullis-1.2.0-py3-none-any.whl": b"wheel"})
    with pytest.raises(BundleRejected, match="mode must be 0644 or 0755"):
        verify(odd, root_of(signer), extract_to=tmp_path / "out")


def test_a_rotation_to_a_trust_root_version_no_bundle_can_carry_is_refused_not_a_crash(
        tmp_path, signer):
    # (root's installer died on it with VersionError: "failed: internal error")
    from portcullis.update.agentconfig import AgentConfig
    from portcullis.update.bundle import FileEntry, VerifiedBundle
    from portcullis.update.targets import TrustRootTarget

    (tmp_path / "trust.json").write_bytes(root_of(signer).to_bytes())
    document = json.loads(root_of(signer).to_bytes())
    new = tmp_path / "new-trust.json"
    new.write_text(json.dumps({**document, "version": 10 ** 10}))
    manifest = Manifest("trust-root", "2", NOW, NOW + timedelta(days=1),
                        (FileEntry("trust.json", "0" * 64, new.stat().st_size),))
    target = TrustRootTarget(AgentConfig(trust_root=tmp_path / "trust.json",
                                         state_dir=tmp_path))

    outcome = target.apply(VerifiedBundle(manifest, manifest.to_bytes(), [], ["k1"],
                                          {"trust.json": new}))

    assert outcome.outcome == "rejected"
    assert "version 10000000000 is not one a bundle can carry" in outcome.reason
    assert keys.load_trust_root(tmp_path / "trust.json").version == 1


def test_a_manifest_naming_a_key_twice_is_refused(tmp_path, signer):
    # Python kept the last "target", a reviewer's tool may show the first: a manifest
    # reviewed (and signed) as a signature update installed as an application.
    bundle = make_bundle(tmp_path)
    with tarfile.open(bundle) as tar:
        text = tar.extractfile("manifest.json").read().decode()
    twice = text.replace('"target": "app"', '"target": "clamav", "target": "app"').encode()
    assert twice != text.encode()
    odd = signed_manifest_bundle(tmp_path, signer, twice,
                                 {"portcullis-1.2.0-py3-none-any.whl": b"wheel"})

    with pytest.raises(BundleRejected, match="key 'target' appears twice"):
        verify(odd, root_of(signer))
    with pytest.raises(keys.TrustRootError, match="key 'threshold' appears twice"):
        keys.TrustRoot.from_bytes(root_of(signer).to_bytes().replace(
            b'"threshold": 1', b'"threshold": 2, "threshold": 1'))
