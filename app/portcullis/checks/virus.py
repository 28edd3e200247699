"""ClamAV's verdict on a message, and on what it carries in password-protected archives.

The whole message goes to clamd (INSTREAM), which decodes MIME and unpacks archives itself.
clamd cannot open encrypted archives; when the message tells the password (FAQ: "PerfectMail
can scan ... password protected .zip files"), the attachment inventory opens them with it
and each decrypted file is scanned too, as is what the inventory opened from the formats
clamd's own readers miss (SZDD written by ``compress -r``, BinHex, objects in RTF, files
uuencoded into text).  A virus anywhere rejects the message with
``554 5.7.1 Rejected Virus: <name>``.

When clamd cannot give a verdict (down, too slow, refusing) the message is not judged
without it.  ``[clamav] on_failure``:

- ``tempfail`` (the default): the symbol CLAMAV_UNAVAILABLE with ``Flag.UNSCANNED`` makes
  the answer ``451 4.7.1 Virus scanner unavailable``, whoever sent the message (white list
  and known peers too); the sending MTA retries and the message arrives once clamd is back.
  Nothing is lost and nothing unscanned is delivered.
- ``accept``: the message is delivered; CLAMAV_UNAVAILABLE stands in its X-Spam-Status
  header and archive record, and the log says a message passed unscanned.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import zipfile

from portcullis.antivirus import filetypes
from portcullis.antivirus.archives import shared_inventory
from portcullis.antivirus.clamd import ClamdClient, ClamdError
from portcullis.checks.attachments import encrypted_symbol
from portcullis.checks.base import Check, Context, Stage
from portcullis.policy import VIRUS_SYMBOL, Flag, Symbol
from portcullis.services import Services

log = logging.getLogger(__name__)

# clamd's AlertEncrypted names: "Heuristics.Encrypted.Zip", ".RAR", ".7Zip", ".PDF", ...
ENCRYPTED_ALERT = "Heuristics.Encrypted."
UNAVAILABLE_REASON = "Virus scanner unavailable, try again later"


class VirusScan(Check):
    name = "virus"
    stage = Stage.DATA
    description = "ClamAV verdict on the message and on password-protected archive contents"
    fail_closed = True

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.settings = services.config.clamav
        self.client = ClamdClient(self.settings.address,
                                  connect_timeout=self.settings.connect_timeout,
                                  timeout=self.settings.scan_timeout,
                                  chunk_size=self.settings.chunk_size,
                                  max_concurrent=self.settings.max_concurrent_scans)
        # Our own deadline fires first and answers as documented; this is the backstop.
        self.timeout = self.settings.scan_timeout + self.settings.connect_timeout + 15.0

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def check(self, ctx: Context) -> list[Symbol]:
        assert ctx.content is not None and ctx.snapshot is not None
        try:
            async with asyncio.timeout(self.settings.scan_timeout + self.settings.connect_timeout):
                verdict = await self.client.scan(ctx.content)
                if verdict.signature and not verdict.signature.startswith(ENCRYPTED_ALERT):
                    return [virus_symbol(verdict.signature)]
                inventory = await shared_inventory(ctx)
                unreached = [*inventory.decrypted, *inventory.expanded]
                if unreached:
                    # One scan for all of them: clamd unpacks the plain archive we make.
                    inner = await self.client.scan(repack(unreached))
                    if inner.signature and not inner.signature.startswith(ENCRYPTED_ALERT):
                        log.info("%s found inside files clamd cannot open itself, opened "
                                 "here (%s)", inner.signature,
                                 ", ".join(" > ".join(p) for p, _ in unreached)[:300])
                        return [virus_symbol(inner.signature)]
        except (ClamdError, TimeoutError) as exc:
            return [self.unscanned(ctx, str(exc) or "clamd gave no verdict in time")]
        if verdict.signature:
            # Encrypted content clamd could not look into.  Zips are the inventory's
            # business (opened with a password from the message, or reported by the
            # attachment check) when it saw every file; anything else (RAR, 7z, PDF,
            # ...), or a zip among files it knows by name only, is reported here.
            kind = verdict.signature.removeprefix(ENCRYPTED_ALERT)
            unseen = any(not f.opened and not f.encrypted for f in inventory.files)
            if kind.lower() != "zip" or not inventory.encrypted_zips \
                    or inventory.unscanned_decrypted or unseen:
                return [encrypted_symbol(f"{kind} content", "encrypted",
                                         bool(ctx.snapshot.settings.get(
                                             "reject_encrypted_archives")))]
        return []

    def unscanned(self, ctx: Context, why: str) -> Symbol:
        """The symbol for a message clamd gave no verdict on, per ``on_failure``."""
        if self.settings.on_failure == "tempfail":
            log.warning("virus scan failed for a message from %s <%s>, deferring it (451): %s",
                        ctx.client_ip, ctx.mail_from, why)
            return Symbol("CLAMAV_UNAVAILABLE", 0.0, UNAVAILABLE_REASON, Flag.UNSCANNED)
        log.warning("virus scan failed for a message from %s <%s>, delivering it UNSCANNED "
                    "([clamav] on_failure = accept): %s", ctx.client_ip, ctx.mail_from, why)
        return Symbol("CLAMAV_UNAVAILABLE", 0.0, f"not scanned for viruses: {why}"[:200])


def repack(files: list[tuple[tuple[str, ...], bytes]]) -> bytes:
    """Files opened here as one unencrypted, uncompressed zip for clamd to scan."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for number, (path, content) in enumerate(files):
            archive.writestr(f"{number}/{filetypes.basename(path[-1]) or 'file'}", content)
    return buffer.getvalue()


def virus_symbol(signature: str) -> Symbol:
    # Signature names are clamd's, but a custom database could hold anything.
    name = re.sub(r"[^\x21-\x7e]", "?", signature)[:120]
    return Symbol(VIRUS_SYMBOL, 100.0, f"Virus: {name}", Flag.MALWARE)
