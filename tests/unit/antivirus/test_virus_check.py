"""The virus check's reading of clamd's verdicts (clamd itself stands in here: what it
answers for these messages is what the real one answers, see tests/integration)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from portcullis.antivirus.clamd import ScanResult
from portcullis.checks.base import Context
from portcullis.checks.virus import VirusScan
from portcullis.config import ClamavConfig
from tests.support.attachments import executable, mail, seven_zip, zipcrypto_zip

pytestmark = pytest.mark.antivirus


class _Clamd:
    """clamd's answers: the message, then the files opened here (clean)."""

    def __init__(self, verdict: str | None) -> None:
        self.verdicts = [verdict]

    async def scan(self, data: bytes) -> ScanResult:
        return ScanResult(self.verdicts.pop(0) if self.verdicts else None)


def _checked(content: bytes, verdict: str | None) -> list:
    check = VirusScan.__new__(VirusScan)
    check.settings = ClamavConfig()
    check.client = _Clamd(verdict)
    ctx = Context(client_ip="192.0.2.1", content=content,
                  snapshot=SimpleNamespace(settings={"reject_encrypted_archives": True}))
    return asyncio.run(check.check(ctx))


def test_an_encrypted_zip_the_inventory_never_saw_is_not_excused_by_one_it_opened():
    """clamd's "encrypted zip" alert was dropped whenever the inventory had met an
    encrypted zip (it opens them with the message's password, or reports them itself).
    A zip it never saw (inside a 7z, past the unpacking budget: known by name only) hid
    behind a harmless one whose password the message gave: no ENCRYPTED_ARCHIVE, even
    with reject_encrypted_archives on."""
    locked = zipcrypto_zip({"evil.exe": executable()}, "unguessable")
    hidden = seven_zip({"a_filler.bin": bytes(65 * 2**20), "b_locked.zip": locked})
    decoy = zipcrypto_zip({"a.txt": b"hello"}, "secret")
    content = mail("x", "The password is: secret", [("docs.7z", hidden), ("open.zip", decoy)])
    [symbol] = _checked(content, "Heuristics.Encrypted.Zip")
    assert symbol.name == "ENCRYPTED_ARCHIVE" and symbol.score == 100.0
    # The alert about the zip it opened itself stays excused.
    assert _checked(mail("x", "The password is: secret", [("open.zip", decoy)]),
                    "Heuristics.Encrypted.Zip") == []
