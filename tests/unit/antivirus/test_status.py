"""ClamAV status for the administrator, and the "update now" request."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from portcullis.antivirus.status import (
    UpdateFailed,
    clamav_status,
    installed_databases,
    parse_version,
    read_cvd_header,
    request_update,
)
from portcullis.config import ClamavConfig

pytestmark = pytest.mark.antivirus

CVD_HEADER = b"ClamAV-VDB:14 Nov 2024 08:26 -0500:27458:2070112:90:X:X:raynman:1731591961"


def write_cvd(path, header=CVD_HEADER):
    path.write_bytes(header.ljust(512, b" ") + b"\x1f\x8b rest of the database")


def test_engine_and_signature_versions_are_read_from_clamds_version_reply():
    assert parse_version("ClamAV 1.4.3/27458/Thu Nov 14 08:26:36 2024") == \
        ("1.4.3", 27458, "Thu Nov 14 08:26:36 2024")
    assert parse_version("ClamAV 1.4.3") == ("1.4.3", None, "")


def test_a_cvd_header_gives_version_count_and_build_time(tmp_path):
    write_cvd(tmp_path / "daily.cvd")
    assert read_cvd_header(tmp_path / "daily.cvd") == (27458, 2070112, "14 Nov 2024 08:26 -0500")
    (tmp_path / "junk.cvd").write_bytes(b"not a database")
    assert read_cvd_header(tmp_path / "junk.cvd") == (None, None, None)


def test_installed_databases_are_told_apart(tmp_path):
    write_cvd(tmp_path / "daily.cld")
    (tmp_path / "portcullis-starter.hdb").write_text("a:68:X\nb:68:Y\n# comment\n")
    (tmp_path / "vendor-extra.ndb").write_text("Sig:0:*:41414141\n")
    (tmp_path / "freshclam.dat").write_bytes(b"state, not a database")
    found = {d.name: d for d in installed_databases(tmp_path)}
    assert set(found) == {"daily.cld", "portcullis-starter.hdb", "vendor-extra.ndb"}
    assert found["daily.cld"].kind == "official" and found["daily.cld"].version == 27458
    assert found["portcullis-starter.hdb"].kind == "starter"
    assert found["portcullis-starter.hdb"].signatures == 2
    assert found["vendor-extra.ndb"].kind == "other"


def test_status_without_clamd_says_so_and_names_the_starter_database(tmp_path):
    (tmp_path / "portcullis-starter.hdb").write_text("a:68:X\n")
    config = ClamavConfig(address=str(tmp_path / "absent.ctl"), database_dir=tmp_path)
    result = asyncio.run(clamav_status(config))
    assert not result.reachable and "absent.ctl" in result.error
    assert result.source == "starter"
    assert any("deferred" in w for w in result.warnings)
    assert any("starter database" in w for w in result.warnings)
    assert result.to_json()["source"] == "starter"


def test_stale_official_signatures_are_warned_about(tmp_path):
    write_cvd(tmp_path / "daily.cvd")
    old = time.time() - 10 * 86400
    os.utime(tmp_path / "daily.cvd", (old, old))
    config = ClamavConfig(address=str(tmp_path / "absent.ctl"), database_dir=tmp_path)
    result = asyncio.run(clamav_status(config))
    assert result.source == "official"
    assert any("last updated" in w for w in result.warnings)


def test_update_now_writes_the_request_the_path_unit_watches(tmp_path):
    request = tmp_path / "update-request"
    config = ClamavConfig(address=str(tmp_path / "absent.ctl"), update_request=str(request))
    outcome = asyncio.run(request_update(config))
    assert outcome.freshclam_requested and request.exists()
    assert not outcome.reloaded and "absent.ctl" in outcome.reload


def test_update_now_asks_freshclam_once_a_minute(tmp_path):
    request = tmp_path / "update-request"
    config = ClamavConfig(address=str(tmp_path / "absent.ctl"), update_request=str(request))
    asyncio.run(request_update(config))
    first = request.stat().st_mtime_ns
    again = asyncio.run(request_update(config))
    assert again.freshclam_requested and "less than a minute ago" in again.freshclam
    assert request.stat().st_mtime_ns == first          # the path unit is not woken again
    os.utime(request, (time.time() - 61, time.time() - 61))
    assert "asked to check" in asyncio.run(request_update(config)).freshclam


def test_update_now_with_neither_freshclam_nor_clamd_fails_saying_why(tmp_path):
    config = ClamavConfig(address=str(tmp_path / "absent.ctl"),
                          update_request=str(tmp_path / "missing-dir" / "update-request"))
    with pytest.raises(UpdateFailed, match=r"not set up here.*absent\.ctl"):
        asyncio.run(request_update(config))


def test_the_web_uis_calling_convention_works_with_the_whole_configuration(tmp_path):
    # The web UI's providers pass the machine configuration as ``config``.
    from portcullis import config as configuration
    from portcullis.web.providers import Providers, plain

    whole = configuration.parse({
        "smtp": {"listen": "127.0.0.1:2525"}, "web": {"listen": "127.0.0.1:8080"},
        "store": {"dir": str(tmp_path / "state")},
        "clamav": {"address": str(tmp_path / "absent.ctl"), "database_dir": str(tmp_path)}})

    class FakeServices:
        config = whole
        store = None

    data = plain(Providers(FakeServices()).call("clamav_status"))   # type: ignore[arg-type]
    assert data["reachable"] is False and data["address"].endswith("absent.ctl")
