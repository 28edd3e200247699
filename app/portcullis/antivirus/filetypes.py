"""What a file really is: its name made safe to judge and show, and its type from its bytes.

Attackers name an executable ``invoice.pdf.exe``, pad it (``invoice.pdf      .exe``), hide
the real extension behind a right-to-left override (``invoice\u202egpj.exe`` shows as
``invoiceexe.jpg``), add trailing dots Windows ignores (``run.exe.``), or give it an innocent
name altogether.  So a file is judged by every name it carries *and* by its leading bytes.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from portcullis.antivirus import arj, binhex, cpio, lzh, onenote, szdd, udf

# Types a mail recipient has no business receiving.  Canonical content types detected from
# bytes (``detect``) use the same words, so one list blocks both "x.exe" and an executable
# named "x.pdf".
# Beyond programs and scripts: Windows shell files that run or fetch something when opened
# (.library-ms, .search-ms, .settingcontent-ms, .diagcab, .appref-ms, .vsto), Excel's
# web queries and SYLK sheets (.iqy, .slk), and ACE archives, which nothing here reads.
DEFAULT_BLOCKED_EXTENSIONS: tuple[str, ...] = (
    "ace", "ade", "adp", "app", "appref-ms", "appx", "appxbundle", "application", "bas",
    "bat", "chm", "cmd", "com", "cpl", "crt", "diagcab", "dll", "elf", "exe", "gadget",
    "hlp", "hta", "inf", "ins", "iqy", "iso", "img", "isp", "jar", "jnlp", "js", "jse",
    "library-ms", "lnk", "macho", "mde", "msc", "msh", "msh1", "msh2", "mshxml", "msh1xml",
    "msh2xml", "msi", "msix", "msixbundle", "msp", "mst", "ocx", "pif", "ps1", "ps1xml",
    "ps2", "ps2xml", "psc1", "psc2", "psm1", "reg", "scf", "scr", "sct", "search-ms",
    "searchconnector-ms", "settingcontent-ms", "shb", "slk", "sys", "url", "vb", "vbe",
    "vbs", "vhd", "vhdx", "vsto", "ws", "wsc", "wsf", "wsh", "xbap", "xll",
)

# Extensions that make a name look harmless; one of these followed by another extension is
# the classic double-extension trick.
DECOY_EXTENSIONS = frozenset({
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "rtf", "jpg", "jpeg", "png",
    "gif", "bmp", "tif", "tiff", "htm", "html", "mp3", "mp4", "avi", "mov", "wav", "csv",
    "odt", "ods", "zip",
})

# Archives the inventory looks into, files compressed or encoded whole (gzip, SZDD,
# BinHex), and the documents that carry files: PDF (embedded files), RTF (embedded OLE
# objects), TNEF (Outlook's winmail.dat), a mail message (.eml), a OneNote section.
ARCHIVE_TYPES = frozenset({"zip", "jar", "gz", "bz2", "xz", "lzma", "tar", "rar", "7z", "iso",
                           "cab", "arj", "lzh", "cpio", "szdd", "binhex", "pdf", "tnef",
                           "rtf", "eml", "one"})
# Pictures: looked at for QR codes (``qrcodes``).
IMAGE_TYPES = frozenset({"png", "jpeg", "gif", "bmp", "webp"})
# Files read whole (within bounds) when found inside an archive: archives, and OLE2
# compound files (Office 97-2003 documents), whose directory says whether macros are in.
CONTAINER_TYPES = ARCHIVE_TYPES | {"ole"}

# Characters that change how a name is displayed without being visible: bidi overrides and
# isolates, zero-width characters, the BOM, soft hyphen.
_INVISIBLE = re.compile("[\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufeff\uffa0]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s{3,}")
# A mail message: it starts with three or more header fields a message has (after the
# "From " line of a message saved from an mbox, which mail programs skip).
_MESSAGE = re.compile(rb"(?:From [^\r\n]{0,1000}\r?\n)?"
                      rb"(?:(?:Return-Path|Received|From|To|Cc|Subject|Date|Message-ID|"
                      rb"MIME-Version|Reply-To|Delivered-To|Content-Type|X-[A-Za-z0-9-]{1,60})"
                      rb":[^\r\n]{0,2000}\r?\n(?:[ \t][^\r\n]{0,2000}\r?\n){0,50}){3}",
                      re.IGNORECASE)
MAX_SHOWN = 80


def basename(name: str) -> str:
    """The last path component, whatever separator an archive or mail client used."""
    return re.split(r"[/\\]", name)[-1]


def normalise(name: str) -> str:
    """The name as Windows would act on it: cut at a NUL (which ends a name for Windows
    and the unpackers written in C: ``evil.exe\0.txt`` is saved as ``evil.exe``),
    compatibility forms folded, invisible characters dropped, trailing dots and spaces
    stripped, lower case."""
    name = unicodedata.normalize("NFKC", basename(name.split("\0", 1)[0]))
    name = _INVISIBLE.sub("", name)
    name = _CONTROL.sub("", name)
    # Windows strips trailing dots and spaces; ":stream" names an alternate data stream.
    name = name.split(":", 1)[0] if re.match(r"^[^:]+\.[^.:]+:", name) else name
    return name.rstrip(". ").lower()


def extensions(name: str) -> list[str]:
    """Every extension of a normalised name, last one last (``a.pdf.exe`` → pdf, exe)."""
    return [part.strip() for part in normalise(name).split(".")[1:] if part.strip()]


def deceptive(name: str) -> str | None:
    """Why a name is built to mislead the reader, or None."""
    if "\0" in name:
        return "a NUL character cutting the name short"
    base = unicodedata.normalize("NFKC", basename(name))
    if _INVISIBLE.search(base):
        return "invisible or direction-changing characters"
    if _SPACES.search(base):
        return "long run of spaces hiding the real extension"
    exts = extensions(name)
    if len(exts) >= 2 and exts[-2] in DECOY_EXTENSIONS and exts[-1] not in DECOY_EXTENSIONS:
        return f"double extension .{exts[-2]}.{exts[-1]}"
    return None


def shown(name: str) -> str:
    """A hostile name made fit for a log line, an SMTP reply or a web page: one line of
    printable characters, bounded in length (HTML escaping is still the page's job)."""
    text = _CONTROL.sub("?", _INVISIBLE.sub("?", basename(name))) or "(no name)"
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


def detect(head: bytes, names: list[str] | None = None) -> str | None:
    """The canonical type of a file from its first bytes (at least 64 KiB when available,
    since ISO 9660 keeps its signature at 32 KiB), or None when nothing telling is found.
    ``names``: member names when the file is a zip (tells a Java archive from a zip)."""
    if head.startswith(b"MZ") and _is_pe(head):
        return "exe"
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                    b"\xcf\xfa\xed\xfe"):
        return "macho"
    if head.startswith(b"L\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00"
                       b"\x00\x00\x00F"):
        return "lnk"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        if names and any(n.upper() in ("META-INF/MANIFEST.MF",) or n.endswith(".class")
                         for n in names):
            return "jar"
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if re.match(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)", head):   # a block, or the end (empty)
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if _is_lzma_alone(head):
        return "lzma"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"MSCF\x00\x00\x00\x00"):
        return "cab"
    if head[7:14] == b"**ACE**":
        return "ace"
    if arj.is_arj(head):
        return "arj"
    if lzh.is_lzh(head):
        return "lzh"
    if cpio.is_cpio(head):
        return "cpio"
    if szdd.is_szdd(head):
        return "szdd"
    if binhex.is_binhex(head):
        return "binhex"
    if head.startswith(b"\x78\x9f\x3e\x22"):
        return "tnef"
    if onenote.is_onenote(head):
        return "one"
    if head.startswith(b"ITSF"):
        return "chm"
    if head.startswith(b"vhdxfile") or head.startswith(b"conectix"):
        return "vhdx" if head.startswith(b"vhdxfile") else "vhd"
    for offset in (0x8001, 0x8801, 0x9001):
        if head[offset:offset + 5] == b"CD001":
            return "iso"
    if udf.present(head):                            # UDF without ISO 9660: a disc image too
        return "iso"
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"BM") and len(head) > 14 and head[6:10] == bytes(4):
        return "bmp"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if _MESSAGE.match(head):
        return "eml"
    if head.startswith(b"{\\rt"):                  # Word takes "{\rtf1" and any "{\rt..."
        return "rtf"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    return None


def _is_lzma_alone(head: bytes) -> bool:
    """The old ``.lzma`` format (``xz --format=lzma``, LZMA SDK's ``lzma e``) has no magic:
    it is told, as xz tells it, by a header that is possible (the lc/lp/pb byte, a
    dictionary of 2^n or 2^n + 2^(n-1) bytes, a size unknown or under 256 GiB) and by
    the range coder's first byte, which is always zero."""
    if len(head) < 14 or head[0] > (4 * 5 + 4) * 9 + 8 or head[13] != 0:
        return False
    dictionary = int.from_bytes(head[1:5], "little")
    size = int.from_bytes(head[5:13], "little")
    if dictionary < 4096:
        return False
    top = 1 << (dictionary.bit_length() - 1)
    return dictionary in (top, top | top >> 1) and (size == 2**64 - 1 or size < 2**38)


def _is_pe(head: bytes) -> bool:
    """An MZ header that is really an executable (not text that happens to start "MZ")."""
    if len(head) < 64:
        return len(head) >= 2   # too short to tell: err on the side of caution
    offset = int.from_bytes(head[0x3C:0x40], "little")
    if offset + 4 <= len(head):
        return head[offset:offset + 4] == b"PE\x00\x00" or head[offset:offset + 2] in (
            b"NE", b"LE", b"LX")
    # A header pointing past what we read: a DOS executable with a big stub, or a PE we
    # could not see; either way an executable if the DOS header is plausible.
    return 0 < offset < 16 * 1024 * 1024 and head[0x18:0x1A] in (b"@\x00", b"\x40\x00")


def normalise_extension_list(entries: list[str]) -> frozenset[str]:
    """Administrators write ``EXE``, ``.exe`` or ``*.exe``: all mean the same."""
    return _normalised_extensions(tuple(entries))


@functools.lru_cache(maxsize=8)
def _normalised_extensions(entries: tuple[str, ...]) -> frozenset[str]:
    # Cached: the setting changes rarely, and it is asked for every message.
    return frozenset(e.strip().lower().lstrip("*").lstrip(".") for e in entries
                     if e.strip().lstrip("*."))
