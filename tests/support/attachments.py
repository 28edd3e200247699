"""Messages with attachments, and the archives hostile mail carries: plain, ZipCrypto and
AES password-protected, nested, and bombs in the style of 42.zip."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import struct
import subprocess
import tarfile
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import rarfile

from portcullis.antivirus import ppmd7
from tests.support import lzx


def mail(subject: str, body: str = "Please see the attachment.",
         attachments: list[tuple[str, bytes]] | None = None, sender: str = "sender@remote.test",
         content_type: str = "application/octet-stream") -> bytes:
    """A well-formed message (Date, Message-ID) with the given attachments."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "alice@example.com"
    message["Subject"] = subject
    message["Date"] = "Sun, 29 Nov 2026 10:00:00 +0000"
    message["Message-ID"] = f"<{uuid.uuid4()}@remote.test>"
    message.set_content(body)
    maintype, subtype = content_type.split("/")
    for name, data in attachments or []:
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    # CRLF: smtplib sends bytes as they are, and SMTP lines end in CRLF.
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def mail_with_part(fields: bytes, data: bytes = b"hello") -> bytes:
    """A message of a line of text and one part with exactly these header ``fields``
    (CRLF after each; what ``mail`` cannot write: no name, a NUL in one, ...) holding
    ``data``, base64-encoded."""
    return (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n" + fields
            + b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(data)
            + b"\r\n--b--\r\n")


def tar_of(files: dict[str, bytes]) -> bytes:
    """A tar archive of ``files`` (regular members)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return out.getvalue()


def zip_of(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zipcrypto_zip(files: dict[str, bytes], password: str) -> bytes:
    """Traditional PKWARE (ZipCrypto) encryption, made by Info-ZIP's ``zip -P`` as a
    worm's author or a careful clerk would."""
    with tempfile.TemporaryDirectory() as work:
        for name, data in files.items():
            (Path(work) / name).write_bytes(data)
        subprocess.run(["zip", "-q", "-P", password, "out.zip", *files], cwd=work, check=True)
        return (Path(work) / "out.zip").read_bytes()


def aes_zip(files: dict[str, bytes], password: str) -> bytes:
    """WinZip AES-256 encryption (what 7-Zip and WinZip make when asked for AES)."""
    import pyzipper

    buffer = io.BytesIO()
    with pyzipper.AESZipFile(buffer, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(password.encode())
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def nested_zip(levels: int, inner: dict[str, bytes]) -> bytes:
    """An archive inside an archive ... ``levels`` deep."""
    data = zip_of(inner)
    for level in range(levels - 1):
        data = zip_of({f"level{levels - 1 - level}.zip": data})
    return data


def zip_bomb_42(levels: int = 5, copies: int = 16, inner_size: int = 256 * 1024 * 1024) -> bytes:
    """A 42.zip-style bomb: ``copies`` copies of the archive below at every level, the
    bottom holding ``inner_size`` zero bytes; a few hundred kilobytes that claim
    ``copies ** (levels - 1) * inner_size`` bytes unpacked (16**4 * 256 MiB = 16 TiB)."""
    chunk = b"\0" * (1024 * 1024)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("0.dat", "w", force_zip64=True) as member:
        for _ in range(inner_size // len(chunk)):
            member.write(chunk)
    data = buffer.getvalue()
    for level in range(1, levels):
        data = zip_of({f"{level}-{n}.zip": data for n in range(copies)})
    return data


def executable() -> bytes:
    """A minimal PE header: what an .exe really starts with."""
    header = bytearray(512)
    header[0:2] = b"MZ"
    header[0x18:0x1A] = b"@\x00"
    header[0x3C:0x40] = (0x80).to_bytes(4, "little")
    header[0x80:0x84] = b"PE\x00\x00"
    return bytes(header) + b"This program cannot be run in DOS mode.\r\n"


# -- RAR 5 (technote.htm of RARLAB): no free tool writes RAR, so the tests build their own
# archives: stored members, members compressed by ``Rar5Packer`` below (bsdtar must
# extract them), solid ones, members marked compressed whose packed bytes are damaged,
# encrypted members, and archives whose names are encrypted as well (rar -hp).

def _vint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _rar_block(kind: int, fields: bytes, *, extra: bytes = b"", data: bytes = b"") -> bytes:
    flags = (0x01 if extra else 0) | (0x02 if data else 0)
    body = _vint(kind) + _vint(flags)
    if extra:
        body += _vint(len(extra))
    if data:
        body += _vint(len(data))
    body += fields + extra
    header = _vint(len(body)) + body
    return zlib.crc32(header).to_bytes(4, "little") + header + data


def _rar_crypt_record(*, for_headers: bool) -> bytes:
    """AES-256 parameters (version 0, 2**15 KDF rounds, salt, IV; no password check)."""
    params = _vint(0) + _vint(0) + bytes([15]) + b"S" * 16
    if not for_headers:
        params += b"I" * 16
    if for_headers:
        return params
    record = _vint(0x01) + params
    return _vint(len(record)) + record


def _aes_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    """``data`` padded with zeros to whole AES blocks and encrypted, as RAR does."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data + b"\0" * (-len(data) % 16)) + encryptor.finalize()


class Rar5Crypt:
    """RAR 5's encryption as WinRAR writes it (technote.htm; unrar's crypt5.cpp): a key by
    PBKDF2-HMAC-SHA256 over 2**15 rounds, a password check value (32 rounds on, folded to
    8 bytes, plus 4 bytes of its SHA-256), AES-256-CBC, and the CRC32 "tweaked" by an HMAC
    keyed with the value 16 rounds on."""

    ROUNDS_LOG = 15

    def __init__(self, password: str, *, rounds_log: int = ROUNDS_LOG) -> None:
        self.salt = uuid.uuid4().bytes
        self.rounds_log = rounds_log
        secret, rounds = password.encode(), 1 << rounds_log
        self.key = hashlib.pbkdf2_hmac("sha256", secret, self.salt, rounds)
        self.hash_key = hashlib.pbkdf2_hmac("sha256", secret, self.salt, rounds + 16)
        value = hashlib.pbkdf2_hmac("sha256", secret, self.salt, rounds + 32)
        check = bytes(value[i] ^ value[i + 8] ^ value[i + 16] ^ value[i + 24] for i in range(8))
        self.check = check + hashlib.sha256(check).digest()[:4]

    def params(self, iv: bytes = b"", *, tweaked: bool = False) -> bytes:
        """The encryption record's fields: version, flags (a check value; tweaked), KDF
        rounds, salt, IV (members only), check value."""
        flags = 0x01 | (0x02 if tweaked else 0)
        return _vint(0) + _vint(flags) + bytes([self.rounds_log]) + self.salt + iv + self.check

    def encrypt(self, data: bytes, iv: bytes) -> bytes:
        return _aes_cbc(self.key, iv, data)

    def tweaked_crc(self, data: bytes) -> int:
        digest = hmac.digest(self.hash_key, zlib.crc32(data).to_bytes(4, "little"), "sha256")
        crc = 0
        for index, byte in enumerate(digest):
            crc ^= byte << ((index & 3) * 8)
        return crc


def rar5(files: dict[str, bytes], *, compressed: frozenset[str] = frozenset(),
         packed: dict[str, bytes] | None = None, filters: dict[str, str] | None = None,
         solid: bool = False, encrypted: frozenset[str] = frozenset(),
         encrypted_names: bool = False, copies: dict[str, str] | None = None,
         password: str | None = None) -> bytes:
    """A RAR 5 archive of ``files``; members named in ``compressed`` are packed for real
    (method 3, by ``Rar5Packer``; ``filters`` maps a name to the filter it is packed
    with: delta, e8, e8e9, arm), with ``solid`` as one solid stream; members in ``packed``
    are marked method 3 with the packed bytes given there (damaged or undecodable ones:
    the header keeps the CRC of the ``files`` content).  Members in ``encrypted`` are
    encrypted with ``password`` as WinRAR does (``Rar5Crypt``); without a password they are
    only marked AES-encrypted, with their bytes as given and no password check.  ``copies``
    maps a member name to the member it is a file copy of (a redirection record, no data).
    With ``encrypted_names`` and a password, every header after the archive encryption
    header is encrypted too (rar -hp); without one, all of that is noise."""
    out = b"Rar!\x1a\x07\x01\x00"
    crypt = Rar5Crypt(password) if password is not None else None
    if encrypted_names and crypt is None:
        out += _rar_block(4, _rar_crypt_record(for_headers=True))
        return out + b"\x00" * 16 + uuid.uuid4().bytes * 8
    headers_crypt = crypt if encrypted_names else None
    if headers_crypt is not None:
        out += _rar_block(4, headers_crypt.params())

    def block(kind: int, fields: bytes, *, extra: bytes = b"", data: bytes = b"") -> bytes:
        written = _rar_block(kind, fields, extra=extra, data=data)
        if headers_crypt is None:
            return written
        header = written[:len(written) - len(data)] if data else written
        iv = uuid.uuid4().bytes
        return iv + headers_crypt.encrypt(header, iv) + data

    out += block(1, _vint(0x04 if solid else 0))
    packer = Rar5Packer()
    first_packed = True
    for name, data in files.items():
        method, area, compression = 0, data, 0
        if name in compressed:
            if not solid:
                packer = Rar5Packer()
            area = packer.pack(data, filter=(filters or {}).get(name))
            method = 3
            compression = 0x40 if solid and not first_packed else 0
            first_packed = False
        elif packed is not None and name in packed:
            method, area = 3, packed[name]
        crc, extra = zlib.crc32(data), b""
        if name in encrypted and crypt is not None:
            iv = uuid.uuid4().bytes
            area, crc = crypt.encrypt(area, iv), crypt.tweaked_crc(data)
            record = _vint(0x01) + crypt.params(iv, tweaked=True)
            extra = _vint(len(record)) + record
        elif name in encrypted:
            extra = _rar_crypt_record(for_headers=False)
        # 128 KiB << n, enough for every match (a solid one may reach into earlier members)
        dictionary = max(0, (max(len(packer.history), len(data), 1) - 1).bit_length() - 17)
        fields = (_vint(0x04) + _vint(len(data)) + _vint(0x20)
                  + crc.to_bytes(4, "little")
                  + _vint(method << 7 | compression | (dictionary << 10 if method else 0))
                  + _vint(0) + _vint(len(name.encode())) + name.encode())
        out += block(2, fields, extra=extra, data=area)
    for name, target in (copies or {}).items():
        fields = (_vint(0) + _vint(0) + _vint(0x20) + _vint(0) + _vint(0)
                  + _vint(len(name.encode())) + name.encode())
        record = _vint(0x05) + _vint(5) + _vint(0) + _vint(len(target.encode())) + target.encode()
        out += block(2, fields, extra=_vint(len(record)) + record)
    return out + block(5, _vint(0))


# -- RAR 5 compression, written here from the format's description (libarchive's reader):
# what WinRAR's methods 1-5 write, small and slow.  bsdtar (libarchive) must extract it.

RAR5_FILTERS = {"delta": 0, "e8": 1, "e8e9": 2, "arm": 3}
_RAR_LENGTH_SLOTS = [(slot, 0) if slot < 8 else ((4 | slot & 3) << (slot // 4 - 1), slot // 4 - 1)
                     for slot in range(44)]            # (length - 2 base, extra bits)
_RAR_DISTANCE_SLOTS = [(slot, 0) if slot < 4 else ((2 | slot & 1) << (slot // 2 - 1),
                                                   slot // 2 - 1) for slot in range(64)]


def _rar_slot(slots: list[tuple[int, int]], value: int) -> int:
    return max(slot for slot, (base, _) in enumerate(slots) if base <= value)


def _write_length_code(bits: _BitWriter, symbols: list[tuple[int, int, int]], *,
                       longest_zero_run: int) -> None:
    """The bit-length code both RAR versions put before their Huffman tables: 20 lengths of
    4 bits (15 escapes a run of zeros, at most ``longest_zero_run``: 16 in RAR 5, 17 in
    RAR 3), then each (symbol, extra width, extra value) in that code."""
    counts = [0] * 20
    for symbol, _, _ in symbols:
        counts[symbol] += 1
    code_lengths = _huffman_lengths(counts)
    at = 0
    while at < 20:
        run = 1
        while at + run < 20 and code_lengths[at] == 0 and code_lengths[at + run] == 0:
            run += 1
        if code_lengths[at] == 0 and run >= 3:
            run = min(run, longest_zero_run)
            bits.put(4, 15)
            bits.put(4, run - 2)
            at += run
            continue
        bits.put(4, code_lengths[at])
        if code_lengths[at] == 15:
            bits.put(4, 0)
        at += 1
    codes = _canonical_codes(code_lengths)
    for symbol, width, value in symbols:
        bits.put(code_lengths[symbol], codes[symbol])
        if width:
            bits.put(width, value)


def _huffman_lengths(frequencies: list[int], limit: int = 15) -> list[int]:
    """Huffman code lengths, none longer than ``limit``; a lone symbol gets one bit."""
    import heapq

    while True:
        heap = [(f, [symbol]) for symbol, f in enumerate(frequencies) if f]
        lengths = [0] * len(frequencies)
        if len(heap) < 2:
            for _, (symbol,) in heap:
                lengths[symbol] = 1
            return lengths
        heapq.heapify(heap)
        while len(heap) > 1:
            (f1, s1), (f2, s2) = heapq.heappop(heap), heapq.heappop(heap)
            for symbol in s1 + s2:
                lengths[symbol] += 1
            heapq.heappush(heap, (f1 + f2, s1 + s2))
        if max(lengths) <= limit:
            return lengths
        frequencies = [f // 2 + 1 if f else 0 for f in frequencies]


def _canonical_codes(lengths: list[int]) -> list[int]:
    codes, code = [0] * len(lengths), 0
    for length, symbol in sorted((n, s) for s, n in enumerate(lengths) if n):
        codes[symbol] = code >> (15 - length)
        code += 1 << (15 - length)
    return codes


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.value = 0
        self.count = 0

    def put(self, width: int, value: int) -> None:
        self.value = self.value << width | value
        self.count += width
        while self.count >= 8:
            self.count -= 8
            self.out.append(self.value >> self.count & 0xFF)
        self.value &= (1 << self.count) - 1

    def finish(self) -> tuple[bytes, int]:
        """The bytes, and how many bits of the last one are used."""
        if not self.count:
            return bytes(self.out), 8
        return bytes(self.out) + bytes([self.value << (8 - self.count) & 0xFF]), self.count


def rar5_filter_encoded(data: bytes, kind: str, start: int = 0, channels: int = 3) -> bytes:
    """What a RAR 5 packer does to ``data`` (from ``start`` in its file) before packing
    it with filter ``kind``; the decoder's filter undoes it."""
    if kind == "delta":
        out = bytearray()
        for channel in range(channels):
            previous = 0
            for byte in data[channel::channels]:
                out.append((previous - byte) & 0xFF)
                previous = byte
        return bytes(out)
    result = bytearray(data)
    if kind == "arm":
        for at in range(0, len(data) - 3, 4):
            if data[at + 3] == 0xEB:
                target = (int.from_bytes(data[at:at + 3], "little") + (start + at) // 4) & 0xFFFFFF
                result[at:at + 3] = target.to_bytes(3, "little")
        return bytes(result)
    size, at = 0x1000000, 0
    while at < len(data) - 4:
        byte = data[at]
        at += 1
        if byte == 0xE8 or (kind == "e8e9" and byte == 0xE9):
            offset = (start + at) % size
            original = int.from_bytes(data[at:at + 4], "little")
            for encoded in ((original + offset) & 0xFFFFFFFF, (original - size) & 0xFFFFFFFF,
                            original):
                if encoded & 0x80000000:
                    decoded = (encoded + size) & 0xFFFFFFFF \
                        if not (encoded + offset) & 0x80000000 else encoded
                else:
                    decoded = (encoded - offset) & 0xFFFFFFFF if encoded < size else encoded
                if decoded == original:
                    result[at:at + 4] = encoded.to_bytes(4, "little")
                    break
            at += 4
    return bytes(result)


class Rar5Packer:
    """RAR 5's LZ77 + Huffman coding (compression methods 1-5): greedy matches of 4 bytes
    and more found through a hash of 4 bytes, the four last distances and "the last match
    again" reused when they fit, optional filters over the file, blocks of about
    ``block_bytes`` of output.  One packer per solid stream: a member packed after another
    carries on from it (its matches may reach into it, and the decoder's state goes on)."""

    def __init__(self) -> None:
        self.history = bytearray()
        self.distances = [0, 0, 0, 0]
        self.last_length = 0
        self._recent: dict[bytes, list[int]] = {}
        # Codes written, by kind: literal, match, old distance, last match, filter; and
        # matches farther than 0x40000 (the longest length bonus).
        self.used = {"literal": 0, "match": 0, "old distance": 0, "last match": 0,
                     "filter": 0, "far": 0}

    def pack(self, data: bytes, *, filter: str | None = None, filter_bytes: int = 0x400000,
             channels: int = 3, block_bytes: int = 1 << 17, new_tables: bool = True) -> bytes:
        """``data`` packed; ``filter`` over all of it, in ranges of ``filter_bytes``;
        ``new_tables``: each block brings its own tables (else only the first does)."""
        ranges = [(start, min(len(data) - start, filter_bytes))
                  for start in range(0, len(data), filter_bytes)] if filter else []
        ranges = [(start, length) for start, length in ranges if length >= 4]
        encoded = bytearray(data)
        for start, length in ranges:
            encoded[start:start + length] = rar5_filter_encoded(
                data[start:start + length], filter, start, channels)  # type: ignore[arg-type]
        tokens = self._tokens(bytes(encoded), ranges, RAR5_FILTERS.get(filter or "", 0),
                              channels)
        blocks: list[list[tuple[int, ...]]] = [[]]
        produced = 0
        for token in tokens:
            if produced >= block_bytes:
                blocks.append([])
                produced = 0
            blocks[-1].append(token)
            produced += token[-1]
        out = bytearray()
        tables = None
        for number, block in enumerate(blocks):
            if new_tables or tables is None:
                tables = self._tables(block if new_tables else tokens)
            out += self._block(block, tables, last=number == len(blocks) - 1,
                               with_tables=new_tables or number == 0)
        return bytes(out)

    def _tokens(self, data: bytes, ranges: list[tuple[int, int]], kind: int,
                channels: int) -> list[tuple[int, ...]]:
        """(kind, ..., bytes produced): 0 literal, 1 match (length, distance), 2 an old
        distance (index, length), 3 the last match again, 4 a filter (start, length)."""
        base = len(self.history)
        self.history += data
        full, recent, distances = self.history, self._recent, self.distances
        tokens: list[tuple[int, ...]] = []
        pending = list(ranges)
        at = base
        while at < len(full):
            best, best_distance = 0, 0
            for index, distance in enumerate(distances):
                if 0 < distance <= at:
                    length = 0
                    while length < 4000 and at + length < len(full) and \
                            full[at - distance + length] == full[at + length]:
                        length += 1
                    if length >= 3 and length > best + (index > 0):
                        best, best_distance = length, distance
            for earlier in reversed(recent.get(bytes(full[at:at + 4]), [])[-32:]):
                distance = at - earlier
                length = 0
                while length < 4000 and at + length < len(full) and \
                        full[earlier + length] == full[at + length]:
                    length += 1
                minimum = 5 if distance > 0x40000 else 4
                if length >= minimum and length > best + 1:
                    best, best_distance = length, distance
            step = best or 1
            while pending and pending[0][0] < at - base + step:
                start, length = pending.pop(0)
                tokens.append((4, start - (at - base), length, kind, channels, 0))
            if not best:
                tokens.append((0, full[at], 1))
            elif best_distance == distances[0] and best == self.last_length:
                tokens.append((3, best))
            elif best_distance in distances:
                index = distances.index(best_distance)
                del distances[index]
                distances.insert(0, best_distance)
                tokens.append((2, index, best, best))
                self.last_length = best
            else:
                distances[1:] = distances[:3]
                distances[0] = best_distance
                tokens.append((1, best, best_distance, best))
                self.last_length = best
            for n in range(at, at + step):
                recent.setdefault(bytes(full[n:n + 4]), []).append(n)
            at += step
        names = ["literal", "match", "old distance", "last match", "filter"]
        for token in tokens:
            self.used[names[token[0]]] += 1
            self.used["far"] += token[0] == 1 and token[2] > 0x40000
        return tokens

    @staticmethod
    def _bonus(distance: int) -> int:
        return (distance > 0x100) + (distance > 0x2000) + (distance > 0x40000)

    def _symbols(self, token: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
        """(table, symbol, extra bits width, extra value) for one token; table 4 is none
        (raw bits)."""
        kind = token[0]
        if kind == 0:
            return [(0, token[1], 0, 0)]
        if kind == 3:
            return [(0, 257, 0, 0)]
        if kind == 4:
            return [(0, 256, 0, 0)]
        if kind == 2:
            _, index, length, _ = token
            slot = _rar_slot(_RAR_LENGTH_SLOTS, length - 2)
            base, extra = _RAR_LENGTH_SLOTS[slot]
            return [(0, 258 + index, 0, 0), (3, slot, extra, length - 2 - base)]
        _, length, distance, _ = token
        coded = length - self._bonus(distance)
        slot = _rar_slot(_RAR_LENGTH_SLOTS, coded - 2)
        base, extra = _RAR_LENGTH_SLOTS[slot]
        out = [(0, 262 + slot, extra, coded - 2 - base)]
        slot = _rar_slot(_RAR_DISTANCE_SLOTS, distance - 1)
        base, extra = _RAR_DISTANCE_SLOTS[slot]
        rest = distance - 1 - base
        if extra >= 4:
            out += [(1, slot, extra - 4, rest >> 4), (2, rest & 15, 0, 0)]
        else:
            out.append((1, slot, extra, rest))
        return out

    def _tables(self, tokens: list[tuple[int, ...]]) -> list[list[int]]:
        counts = [[0] * size for size in (306, 64, 16, 44)]
        for token in tokens:
            for table, symbol, _, _ in self._symbols(token):
                counts[table][symbol] += 1
        return [_huffman_lengths(c) for c in counts]

    def _block(self, tokens: list[tuple[int, ...]], tables: list[list[int]], *, last: bool,
               with_tables: bool) -> bytes:
        bits = _BitWriter()
        if with_tables:
            self._write_tables(bits, [n for table in tables for n in table])
        codes = [(_canonical_codes(t), t) for t in tables]
        for token in tokens:
            symbols = self._symbols(token)
            if token[0] == 4:
                _, start, length, kind, channels, _ = token
                bits.put(codes[0][1][256], codes[0][0][256])
                for value in (start, length):
                    width = max(1, (value.bit_length() + 7) // 8)
                    bits.put(2, width - 1)
                    for index in range(width):
                        bits.put(8, value >> (8 * index) & 0xFF)
                bits.put(3, kind)
                if kind == 0:
                    bits.put(5, channels - 1)
                continue
            for table, symbol, width, value in symbols:
                code, lengths = codes[table]
                bits.put(lengths[symbol], code[symbol])
                if width:
                    bits.put(width, value)
        data, used = bits.finish()
        size_bytes = 1 if len(data) < 0x100 else 2 if len(data) < 0x10000 else 3
        flags = (used - 1) | (size_bytes - 1) << 3 | last << 6 | with_tables << 7
        size = len(data).to_bytes(size_bytes, "little")
        check = 0x5A ^ flags
        for byte in size:
            check ^= byte
        return bytes([flags, check]) + size + data

    @staticmethod
    def _write_tables(bits: _BitWriter, lengths: list[int]) -> None:
        symbols: list[tuple[int, int, int]] = []      # (symbol, extra width, extra value)
        at = 0
        while at < len(lengths):
            value, run = lengths[at], 1
            while at + run < len(lengths) and lengths[at + run] == value and run < 138:
                run += 1
            if value == 0 and run >= 3:
                symbols.append((18, 3, run - 3) if run <= 10 else (19, 7, run - 11))
                at += run
            elif value and run >= 4:
                symbols.append((value, 0, 0))
                repeat = min(run - 1, 138)
                symbols.append((16, 3, repeat - 3) if repeat <= 10 else (17, 7, repeat - 11))
                at += 1 + repeat
            else:
                symbols.append((value, 0, 0))
                at += 1
        _write_length_code(bits, symbols, longest_zero_run=16)


# -- RAR 3 (RAR 2.9's format, what WinRAR 2.9-4.x write): headers of 7+ bytes, each with
# the low 16 bits of its CRC32; members compressed by ``Rar3Packer`` below, written here
# from the format's description (libarchive's reader; bsdtar must extract every one).

# WinRAR's standard filter programs, as it writes them into the stream (taken from an
# archive WinRAR made: libarchive's test_read_format_rar_filter.rar, BSD licence); the
# decoders know them by length and CRC32.
RAR3_E8E9_CODE = bytes.fromhex(
    "841b0128111069808000000d13a101c689d280ac9762855cc905c92f8148c8aa981895728881aac95b"
    "0020ab6a03355811a24821b01291f4b8")
RAR3_DELTA_CODE = bytes.fromhex("2f019a4180ec27482f09766dd3ea415b5944e8175ce16c914c4e3f7700")
_RAR3_LENGTH_BITS = [0] * 8 + [n for n in range(1, 6) for _ in range(4)]
_RAR3_LENGTH_BASES = [sum(1 << b for b in _RAR3_LENGTH_BITS[:n]) for n in range(28)]
_RAR3_DISTANCE_BITS = [0, 0, 0, 0] + [n // 2 - 1 for n in range(4, 36)] + [16] * 12 + [18] * 12
_RAR3_DISTANCE_BASES = [sum(1 << b for b in _RAR3_DISTANCE_BITS[:n]) for n in range(60)]
_RAR3_SHORT = [(0, 2), (4, 2), (8, 3), (16, 4), (32, 5), (64, 6), (128, 6), (192, 6)]


def _rar3_header(kind: int, flags: int, fields: bytes, *, add: bytes = b"") -> bytes:
    body = bytes([kind]) + struct.pack("<HH", flags, 7 + len(fields)) + fields
    return struct.pack("<H", zlib.crc32(body) & 0xFFFF) + body + add


def rar3(files: dict[str, bytes], *, compressed: frozenset[str] = frozenset(),
         packed: dict[str, bytes] | None = None, filters: dict[str, str] | None = None,
         solid: bool = False, encrypted: frozenset[str] = frozenset(),
         packer_options: dict[str, object] | None = None, password: str | None = None,
         dos_names: dict[str, str] | None = None) -> bytes:
    """A RAR 3 archive of ``files``: members named in ``compressed`` are packed for real
    (method 3, by ``Rar3Packer``; ``filters`` maps a name to "e8e9" or "delta"), with
    ``solid`` as one solid stream; members in ``packed`` are marked method 3 with the
    packed bytes given there (the header keeps the CRC of the ``files`` content);
    members in ``encrypted`` are encrypted with ``password`` as WinRAR 3 does (a salt of
    their own, rarfile's key derivation, AES-128-CBC), or without one only marked
    encrypted, with their bytes as given.  A member in ``dos_names`` has its name
    written as WinRAR writes a Unicode name: that DOS name, a NUL, then the name in
    RAR's own UTF-16 coding (flag 0x200)."""
    out = b"Rar!\x1a\x07\x00" + _rar3_header(0x73, 0x08 if solid else 0, bytes(6))
    packer = Rar3Packer()
    first_packed = True
    for name, data in files.items():
        method, area, flags = 0x30, data, 0x8000 | 0x80          # 1 MiB dictionary
        if name in compressed:
            if not solid:
                packer = Rar3Packer()
            area = packer.pack(data, filter=(filters or {}).get(name),
                               **(packer_options or {}))  # type: ignore[arg-type]
            method = 0x33
            flags |= 0x10 if solid and not first_packed else 0
            first_packed = False
        elif packed is not None and name in packed:
            method, area = 0x33, packed[name]
        salt = b""
        if name in encrypted:
            flags |= 0x04
            if password is not None:
                salt = uuid.uuid4().bytes[:8]
                flags |= 0x400
                area = _aes_cbc(*rarfile.rar3_s2k(password, salt), area)
        encoded = name.encode()
        if dos_names is not None and name in dos_names:
            flags |= 0x200
            encoded = dos_names[name].encode("cp437") + b"\0" + _rar3_unicode_name(name)
        fields = struct.pack("<IIBIIBBHI", len(area), len(data), 2, zlib.crc32(data),
                             0x5A210000, 29, method, len(encoded), 0x20) + encoded + salt
        out += _rar3_header(0x74, flags, fields, add=area)
    return out + _rar3_header(0x7B, 0x4000, b"")


def _rar3_unicode_name(name: str) -> bytes:
    """``name`` in RAR 3's coding of Unicode names: a high byte (unused here), then per
    four characters a byte of 2-bit flags, each 2: the character's two bytes follow."""
    units = name.encode("utf-16-le")
    out = bytearray(b"\0")
    for at in range(0, len(units), 8):
        chunk = units[at:at + 8]
        out.append(0xAA)
        out += chunk
    return bytes(out)


class Rar3Packer:
    """RAR 2.9's LZ77 + Huffman coding (methods 1-3 of WinRAR 3): greedy matches found
    through a hash of 3 bytes, two-byte matches at short distances, the four last
    distances and "the last match again" reused when they fit, optional filters (E8E9,
    DELTA) over ranges of the file, blocks of about ``block_bytes`` of output with new
    tables (added to the old ones with ``keep``).  One packer per solid stream: a member
    packed after another carries on from it."""

    def __init__(self) -> None:
        self.history = bytearray()
        self.distances = [0, 0, 0, 0]
        self.last_length = self.last_distance = 0
        self.lengths = [0] * 404
        self._recent: dict[bytes, list[int]] = {}
        self._pairs: dict[bytes, int] = {}
        self.used = {"literal": 0, "match": 0, "old distance": 0, "last match": 0,
                     "short": 0, "filter": 0, "far": 0, "tables": 0}

    def pack(self, data: bytes, *, filter: str | None = None, filter_bytes: int = 0x3C000,
             channels: int = 3, block_bytes: int = 1 << 17, keep: bool = False) -> bytes:
        """``data`` packed; ``filter`` over all of it in ranges of ``filter_bytes``;
        ``keep``: blocks after the first code their lengths as changes to the last ones."""
        ranges = [(start, min(len(data) - start, filter_bytes))
                  for start in range(0, len(data), filter_bytes)] if filter else []
        ranges = [(start, length) for start, length in ranges if length > 4]
        encoded = bytearray(data)
        for start, length in ranges:
            encoded[start:start + length] = rar5_filter_encoded(
                data[start:start + length], filter, start, channels)  # type: ignore[arg-type]
        tokens = self._tokens(bytes(encoded), ranges, filter, channels)
        bits = _BitWriter()
        blocks: list[list[tuple[int, ...]]] = [[]]
        produced = 0
        for token in tokens:
            if produced >= block_bytes:
                blocks.append([])
                produced = 0
            blocks[-1].append(token)
            produced += token[-1]
        for number, block in enumerate(blocks):
            symbols = [s for token in block for s in token[1]] + [(0, 256, 0, 0)]
            counts = [[0] * size for size in (299, 60, 17, 28)]
            for table, symbol, _, _ in symbols:
                if table < 4:
                    counts[table][symbol] += 1
            tables = [_huffman_lengths(c) for c in counts]
            if bits.count:
                bits.put(8 - bits.count, 0)
            self._write_tables(bits, [n for t in tables for n in t], keep and number > 0)
            codes = [(_canonical_codes(t), t) for t in tables]
            for table, symbol, width, value in symbols[:-1]:
                if table == 4:                      # raw bits
                    bits.put(width, value)
                    continue
                code, lengths = codes[table]
                bits.put(lengths[symbol], code[symbol])
                if width:
                    bits.put(width, value)
            bits.put(tables[0][256], codes[0][0][256])
            last = number == len(blocks) - 1
            bits.put(1, 0 if last else 1)           # 1: new tables follow; 0: the end
            if last:
                bits.put(1, 1)                      # a solid member after starts with tables
        out, _ = bits.finish()
        return out

    def _tokens(self, data: bytes, ranges: list[tuple[int, int]], kind: str | None,
                channels: int) -> list[tuple[int, list[tuple[int, int, int, int]], int]]:
        """(kind, symbols, bytes produced): symbols are (table, symbol, extra bits width,
        extra value), table 4 for raw bits."""
        base = len(self.history)
        self.history += data
        full, recent, pairs = self.history, self._recent, self._pairs
        tokens: list[tuple[int, list[tuple[int, int, int, int]], int]] = []
        pending = list(ranges)
        first_filter = True
        at = base
        while at < len(full):
            while pending and pending[0][0] <= at - base:
                start, length = pending.pop(0)
                tokens.append((4, self._filter(start - (at - base), length, kind, channels,
                                               first_filter), 0))
                first_filter = False
            best, best_distance = 0, 0
            end = len(full)
            if pending:
                end = min(end, base + pending[0][0])    # no match across a range's start
            for distance in self.distances:
                if 0 < distance <= at:
                    length = 0
                    while length < 255 and at + length < end and \
                            full[at - distance + length] == full[at + length]:
                        length += 1
                    if length >= 2 and length > best:
                        best, best_distance = length, distance
            for earlier in reversed(recent.get(bytes(full[at:at + 3]), [])[-16:]):
                distance = at - earlier
                length = 0
                while length < 255 and at + length < end and \
                        full[earlier + length] == full[at + length]:
                    length += 1
                minimum = 3 + (distance >= 0x2000) + (distance >= 0x40000)
                if length >= minimum and length > best + 1:
                    best, best_distance = length, distance
            if not best and at + 2 <= end and 0 < at - pairs.get(bytes(full[at:at + 2]), -999) \
                    <= 256:
                best, best_distance = 2, at - pairs[bytes(full[at:at + 2])]
            step = best or 1
            tokens.append(self._match(best, best_distance) if best else
                          (0, [(0, full[at], 0, 0)], 1))
            for n in range(at, at + step):
                recent.setdefault(bytes(full[n:n + 3]), []).append(n)
                pairs[bytes(full[n:n + 2])] = n
            at += step
        names = ["literal", "match", "old distance", "last match", "filter", "short"]
        for token in tokens:
            self.used[names[token[0]]] += 1
        return tokens

    def _match(self, length: int, distance: int) -> tuple[int, list[tuple[int, int, int, int]],
                                                           int]:
        distances = self.distances
        if distance == self.last_distance and length == self.last_length:
            return (3, [(0, 258, 0, 0)], length)
        self.last_length, self.last_distance = length, distance
        if distance in distances:
            index = distances.index(distance)
            del distances[index]
            distances.insert(0, distance)
            slot = max(s for s in range(28) if _RAR3_LENGTH_BASES[s] <= length - 2)
            return (2, [(0, 259 + index, 0, 0),
                        (3, slot, _RAR3_LENGTH_BITS[slot], length - 2 - _RAR3_LENGTH_BASES[slot])],
                    length)
        distances[1:] = distances[:3]
        distances[0] = distance
        if length == 2:
            slot = max(s for s in range(8) if _RAR3_SHORT[s][0] <= distance - 1)
            base, width = _RAR3_SHORT[slot]
            return (5, [(0, 263 + slot, width, distance - 1 - base)], 2)
        self.used["far"] += distance >= 0x40000
        coded = length - 3 - (distance >= 0x2000) - (distance >= 0x40000)
        slot = max(s for s in range(28) if _RAR3_LENGTH_BASES[s] <= coded)
        symbols = [(0, 271 + slot, _RAR3_LENGTH_BITS[slot], coded - _RAR3_LENGTH_BASES[slot])]
        slot = max(s for s in range(60) if _RAR3_DISTANCE_BASES[s] <= distance - 1)
        rest, extra = distance - 1 - _RAR3_DISTANCE_BASES[slot], _RAR3_DISTANCE_BITS[slot]
        if slot > 9:
            symbols.append((1, slot, extra - 4, rest >> 4) if extra > 4 else (1, slot, 0, 0))
            symbols.append((2, rest & 15, 0, 0))
        else:
            symbols.append((1, slot, extra, rest))
        return (1, symbols, length)

    @staticmethod
    def _filter(start: int, length: int, kind: str | None, channels: int,
                first: bool) -> list[tuple[int, int, int, int]]:
        """Symbol 257 and the filter record: the program (new at the member's first
        filter: its code follows), the range's start (from here) and length, and for
        DELTA the channels in register 0."""
        record = _BitWriter()

        def number(value: int) -> None:
            for limit, tag, width in ((16, 0, 4), (256, 1, 8), (65536, 2, 16)):
                if value < limit and (tag != 1 or value >= 16):
                    record.put(2, tag)
                    record.put(width, value)
                    return
            record.put(2, 3)
            record.put(32, value)

        code = RAR3_DELTA_CODE if kind == "delta" else RAR3_E8E9_CODE
        flags = 0x80 | 0x20 | (0x10 if kind == "delta" else 0)
        number(0 if first else 1)               # 0: a fresh list, this program first
        number(start)
        number(length)
        if kind == "delta":
            record.put(7, 1)
            number(channels)
        if first:
            number(len(code))
            for byte in code:
                record.put(8, byte)
        body, _ = record.finish()
        size = len(body)
        symbols = [(0, 257, 0, 0)]
        if size <= 6:
            symbols.append((4, 0, 8, flags | (size - 1)))
        elif size <= 262:
            symbols += [(4, 0, 8, flags | 6), (4, 0, 8, size - 7)]
        else:
            symbols += [(4, 0, 8, flags | 7), (4, 0, 16, size)]
        return symbols + [(4, 0, 8, byte) for byte in body]

    def _write_tables(self, bits: _BitWriter, lengths: list[int], keep: bool) -> None:
        bits.put(1, 0)                          # not PPMd
        bits.put(1, 1 if keep else 0)
        old = self.lengths if keep else [0] * 404
        self.lengths = list(lengths)
        self.used["tables"] += 1
        symbols: list[tuple[int, int, int]] = []
        at = 0
        while at < len(lengths):
            value, run = lengths[at], 1
            while at + run < len(lengths) and lengths[at + run] == value and run < 138:
                run += 1
            if value == 0 and run >= 3:
                symbols.append((18, 3, run - 3) if run <= 10 else (19, 7, run - 11))
                at += run
            elif at and lengths[at - 1] == value and run >= 3:
                run = min(run, 138)
                symbols.append((16, 3, run - 3) if run <= 10 else (17, 7, run - 11))
                at += run
            else:
                symbols.append(((value - old[at]) & 15, 0, 0))
                at += 1
        _write_length_code(bits, symbols, longest_zero_run=17)


def _packed_by_tool(files: dict[str, bytes], suffix: str,
                    command: Callable[[Path], list[str]], *, quiet: bool = False) -> bytes:
    """``files`` written to a scratch tree and packed there by a real tool:
    ``command(output path)`` is run in the tree (``quiet``: its chatter dropped)."""
    with tempfile.TemporaryDirectory(prefix="portcullis-archive-") as work:
        root = Path(work) / "in"
        root.mkdir()
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        out = Path(work) / f"out{suffix}"
        subprocess.run(command(out), cwd=root, check=True,
                       stdout=subprocess.DEVNULL if quiet else None)
        return out.read_bytes()


def seven_zip(files: dict[str, bytes], *options: str) -> bytes:
    """A 7z archive of ``files`` made by 7-Zip itself (``7zz``, Debian's 7zip package);
    ``options`` as 7zz takes them (``-pSECRET``, ``-mhe=on``, ``-ms=off``, ...)."""
    return _packed_by_tool(files, ".7z",
                           lambda out: ["7zz", "a", "-bd", "-bso0", *options, str(out), "."])


def iso_image(files: dict[str, bytes], *options: str) -> bytes:
    """An ISO 9660 image of ``files`` made by genisoimage (``-J`` for Joliet names)."""
    return _packed_by_tool(files, ".iso",
                           lambda out: ["genisoimage", "-quiet", *options, "-o", str(out), "."])


def udf_image(files: dict[str, bytes]) -> bytes:
    """A UDF-only disc image of ``files``: genisoimage's UDF 1.02 tree, with the ISO 9660
    volume descriptors it writes beside it blanked out (7-Zip then lists it as UDF)."""
    image = bytearray(iso_image(files, "-udf"))
    sectors = [image[s * 2048:(s + 1) * 2048] for s in range(16, 32)]
    # The recognition sequence (BEA01, NSR02, TEA01) moves up to sector 16, where a
    # UDF-only image has it.
    kept = [s for s in sectors if s[1:6] in (b"BEA01", b"NSR02", b"NSR03", b"TEA01")]
    image[16 * 2048:32 * 2048] = b"".join(kept).ljust(16 * 2048, b"\0")
    return bytes(image)


def two_tree_image(both: dict[str, bytes], udf_only: dict[str, bytes]) -> bytes:
    """A disc image made by pycdlib with an ISO 9660 tree and a UDF 2.60 one: files in
    ``both`` are in each, those in ``udf_only`` only in the tree Windows shows."""
    import pycdlib

    image = pycdlib.PyCdlib()
    image.new(udf="2.60", interchange_level=4)
    folders = {"/".join(n.split("/")[:depth]) for n in [*both, *udf_only]
               for depth in range(1, n.count("/") + 1)}
    for folder in sorted(folders):              # in the UDF tree (ISO 9660 names are flat)
        image.add_directory(udf_path=f"/{folder}")
    for number, (name, data) in enumerate(both.items()):
        image.add_fp(io.BytesIO(data), len(data), f"/F{number}.;1", udf_path=f"/{name}")
    for name, data in udf_only.items():
        image.add_fp(io.BytesIO(data), len(data), udf_path=f"/{name}")
    out = io.BytesIO()
    image.write_fp(out)
    image.close()
    return out.getvalue()


def gcab_cabinet(files: dict[str, bytes], *options: str) -> bytes:
    """A Microsoft cabinet of ``files`` made by gcab (Debian's gcab package): stored, or
    MSZIP-compressed with ``--zip``."""
    return _packed_by_tool(files, ".cab",
                           lambda out: ["gcab", "--create", *options, str(out), *files])


def handmade_cabinet(files: dict[str, bytes], *, method: int = 1, window_bits: int = 16,
                     e8: bool = False, plan: tuple[tuple[int, int], ...] | None = None,
                     ) -> bytes:
    """A one-folder cabinet written here, for what gcab does not write: MSZIP blocks that
    use the previous block as their dictionary (as makecab's do), LZX (method 3, packed by
    ``tests.support.lzx`` over a window of 2^``window_bits``, with E8 translation and
    the blocks of ``plan``), and Quantum (2) folders, whose blocks are then just the raw
    bytes labelled so."""
    stream = b"".join(files.values())
    blocks = b""
    count = 0
    if method == 3:
        frames = lzx.compress(stream, window_bits, e8_size=len(stream) if e8 else 0,
                              **({"plan": plan} if plan else {}))
    for start in range(0, len(stream), 32768):
        chunk = stream[start:start + 32768]
        if method == 1:
            history = stream[max(0, start - 32768):start]
            packer = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=history) if history \
                else zlib.compressobj(9, zlib.DEFLATED, -15)
            packed = b"CK" + packer.compress(chunk) + packer.flush()
        elif method == 3:
            packed = frames[start // 32768]
        else:
            packed = chunk
        blocks += (0).to_bytes(4, "little") + len(packed).to_bytes(2, "little") \
            + len(chunk).to_bytes(2, "little") + packed
        count += 1
    entries, offset = b"", 0
    for name, data in files.items():
        entries += (len(data).to_bytes(4, "little") + offset.to_bytes(4, "little")
                    + b"\0\0" + b"\x21\x5d\x00\x60" + b"\x20\x00" + name.encode() + b"\0")
        offset += len(data)
    header_size, folder_size = 36, 8
    files_at = header_size + folder_size
    data_at = files_at + len(entries)
    total = data_at + len(blocks)
    header = (b"MSCF\0\0\0\0" + total.to_bytes(4, "little") + b"\0" * 4
              + files_at.to_bytes(4, "little") + b"\0" * 4 + b"\x03\x01"
              + (1).to_bytes(2, "little") + len(files).to_bytes(2, "little")
              + b"\0\0" + b"\0\0" + b"\0\0")
    compression = method | window_bits << 8 if method == 3 else method
    folder = data_at.to_bytes(4, "little") + count.to_bytes(2, "little") \
        + compression.to_bytes(2, "little")
    return header + folder + entries + blocks


def ole_document(paths: list[str], *, streams: dict[str, bytes] | None = None,
                 filler: int = 0) -> bytes:
    """An OLE2 compound file (version 3, 512-byte sectors) holding the given storages and
    streams ("Macros/VBA/dir": storages Macros and VBA, stream dir).  Streams are empty
    unless ``streams`` gives their bytes: those under 4096 bytes go to the mini stream, as
    the format requires.  ``filler`` unused sectors come before the directory (as in a
    large document).  olefile (oletools' reader) lists it and reads its streams."""
    streams = streams or {}
    free, end, fat_mark = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD
    tree: dict[str, dict] = {}
    for path in [*paths, *streams]:
        node = tree
        for part in path.split("/"):
            node = node.setdefault(part, {})
    # name, type, first child, right sibling, path
    entries: list[list] = [["Root Entry", 5, free, free, ""]]

    def add(children: dict, parent: int, prefix: str) -> None:
        previous = None
        for name, grandchildren in children.items():
            path = f"{prefix}{name}"
            storage = bool(grandchildren) or name in ("Macros", "VBA")
            entries.append([name, 1 if storage else 2, free, free, path])
            index = len(entries) - 1
            if previous is None:
                entries[parent][2] = index
            else:
                entries[previous][3] = index
            previous = index
            add(grandchildren, index, f"{path}/")

    add(tree, 0, "")
    small = {p: d for p, d in streams.items() if len(d) < 4096}
    mini, mini_at = b"", {}
    for path, data in small.items():
        mini_at[path] = len(mini) // 64
        mini += data.ljust(-(-len(data) // 64) * 64, b"\0")
    mini_chain: list[int] = []
    for path, data in small.items():
        count = -(-len(data) // 64)
        mini_chain += [mini_at[path] + n + 1 for n in range(count - 1)] + [end] if count else []
    mini_fat = b"".join(n.to_bytes(4, "little") for n in mini_chain)
    blobs = {"minifat": mini_fat, "ministream": mini,
             **{p: d for p, d in streams.items() if len(d) >= 4096}}
    directory_sectors = -(-len(entries) * 128 // 512)
    sizes = {name: -(-len(data) // 512) for name, data in blobs.items()}
    fat_count = 1
    while fat_count * 128 < fat_count + filler + directory_sectors + sum(sizes.values()):
        fat_count += 1
    chain = [fat_mark] * fat_count + [free] * filler
    starts = {"directory": len(chain)}
    chain += [len(chain) + n + 1 for n in range(directory_sectors - 1)] + [end]
    body = b""
    for name, data in blobs.items():
        starts[name] = len(chain) if data else end
        if data:
            chain += [len(chain) + n + 1 for n in range(sizes[name] - 1)] + [end]
            body += data.ljust(sizes[name] * 512, b"\0")
    directory = b""
    for name, kind, child, right, path in entries:
        if kind == 5:
            start, size = starts["ministream"], len(mini)
        elif path in small:
            start, size = mini_at[path], len(small[path])
        elif path in streams:
            start, size = starts[path], len(streams[path])
        else:
            start, size = end, 0
        encoded = name.encode("utf-16-le") + b"\0\0"
        directory += (encoded.ljust(64, b"\0") + len(encoded).to_bytes(2, "little")
                      + bytes([kind, 1]) + free.to_bytes(4, "little")
                      + right.to_bytes(4, "little") + child.to_bytes(4, "little")
                      + bytes(16 + 4 + 16) + start.to_bytes(4, "little")
                      + size.to_bytes(8, "little"))
    directory = directory.ljust(directory_sectors * 512, b"\0")
    fat = b"".join(n.to_bytes(4, "little") for n in chain).ljust(fat_count * 512, b"\xff")
    difat = b"".join(n.to_bytes(4, "little") for n in range(fat_count))
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + b"\x3e\x00\x03\x00\xfe\xff"
              + b"\x09\x00\x06\x00" + bytes(6) + bytes(4) + fat_count.to_bytes(4, "little")
              + starts["directory"].to_bytes(4, "little") + bytes(4)
              + (4096).to_bytes(4, "little") + starts["minifat"].to_bytes(4, "little")
              + (-(-len(mini_fat) // 512)).to_bytes(4, "little")
              + end.to_bytes(4, "little") + bytes(4) + difat.ljust(109 * 4, b"\xff"))
    return header + fat + bytes(filler * 512) + directory + body


def biff_workbook(sheets: list[tuple[str, int]], *, pad_to: int = 0) -> bytes:
    """An Excel 97-2003 Workbook stream's global part: BOF, a BoundSheet8 record per
    (name, sheet type: 0 worksheet, 1 Excel 4.0 macro sheet), EOF; padded with zeros."""
    def record(kind: int, data: bytes) -> bytes:
        return kind.to_bytes(2, "little") + len(data).to_bytes(2, "little") + data

    out = record(0x0809, b"\x00\x06\x05\x00" + bytes(12))
    for name, kind in sheets:
        out += record(0x0085, bytes(4) + bytes([0, kind]) + bytes([len(name), 0])
                      + name.encode("latin-1"))
    return (out + record(0x000A, b"")).ljust(pad_to, b"\0")


WORD_MACROS = ["WordDocument", "1Table", "Macros/PROJECT", "Macros/VBA/_VBA_PROJECT",
               "Macros/VBA/dir", "Macros/VBA/ThisDocument"]


# Where ``pdf_document`` hangs its JavaScript: each runs without the reader doing anything
# but open the document (ISO 32000-1 12.6.3, 12.6.4.16).
PDF_SCRIPT_TRIGGERS = {
    "open": "the catalog's /OpenAction refers to the script",
    "inline": "the /OpenAction is the script itself",
    "next": "the /OpenAction goes to page 1, then runs the script as its /Next",
    "names": "a document-level script, in the /Names /JavaScript tree",
    "page": "the first page's /AA /O (page opened)",
    "annotation": "a link annotation's /AA /PV (its page becomes visible)",
}


def pdf_document(*, links: tuple[str, ...] = (), embedded: dict[str, bytes] | None = None,
                 open_javascript: str = "", trigger: str = "open", launch: str = "",
                 form_javascript: str = "", open_page: bool = False,
                 login_form: str = "", filters: tuple[str, ...] = ("FlateDecode",),
                 pictures: tuple[tuple[str, bytes], ...] = ()) -> bytes:
    """A one-page PDF written here: link annotations to ``links``, ``embedded`` files
    (compressed, in the EmbeddedFiles name tree), ``open_javascript`` run on opening by
    one of the PDF_SCRIPT_TRIGGERS, a /Launch action, a form field whose value is
    checked by ``form_javascript`` (its /AA /V and /K), an /OpenAction that shows the
    first page (``open_page``), a login form (user name, password, a button submitting
    them to the URL ``login_form``); embedded files are written through ``filters``
    (FlateDecode, ASCIIHexDecode, ASCII85Decode, RunLengthDecode, applied in order when
    read); ``pictures`` (kind, image file) drawn on the page, each stored as its kind says:
    "jpeg" (DCTDecode), "grey", "rgb" (8-bit pixels) or "bilevel" (1 bit a pixel), the
    pixels Flate-compressed.  ``qpdf --check`` accepts it, decoding every stream;
    ``qpdf_rewrite`` packs it as Acrobat would."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def script(code: str) -> bytes:
        return b"<< /S /JavaScript /JS (" + code.encode() + b") >>"

    catalog = add(b"")                                   # filled in last
    pages = add(b"")
    page = add(b"")
    automatic = add(script(open_javascript)) if open_javascript else 0
    catalog_extra, page_extra, names = b"", b"", b""
    annotations = [add(b"<< /Type /Annot /Subtype /Link /Rect [10 10 100 30] /Border [0 0 0]"
                       b" /A << /S /URI /URI (" + link.encode() + b") >> >>") for link in links]
    if launch:
        annotations.append(add(b"<< /Type /Annot /Subtype /Link /Rect [10 40 100 60]"
                               b" /A << /S /Launch /F (" + launch.encode() + b") >> >>"))
    if automatic:
        assert trigger in PDF_SCRIPT_TRIGGERS, trigger
        if trigger == "open":
            catalog_extra += b" /OpenAction %d 0 R" % automatic
        elif trigger == "inline":
            catalog_extra += b" /OpenAction " + script(open_javascript)
        elif trigger == "next":
            catalog_extra += b" /OpenAction << /S /GoTo /D [%d 0 R /Fit] /Next [%d 0 R] >>" \
                % (page, automatic)
        elif trigger == "names":
            names += b" /JavaScript << /Names [(init) %d 0 R] >>" % automatic
        elif trigger == "page":
            page_extra += b" /AA << /O %d 0 R >>" % automatic
        else:
            annotations.append(add(b"<< /Type /Annot /Subtype /Link /Rect [10 70 100 90]"
                                   b" /Border [0 0 0] /AA << /PV %d 0 R >> >>" % automatic))
    if open_page:
        catalog_extra += b" /OpenAction [%d 0 R /Fit]" % page
    fields = []

    def field(kind: bytes, name: bytes, extra: bytes) -> None:
        fields.append(add(b"<< /Type /Annot /Subtype /Widget /FT /%s /T (%s) /P %d 0 R"
                          b" /Rect [10 %d 100 %d]%s >>"
                          % (kind, name, page, 100 + 25 * len(fields), 120 + 25 * len(fields),
                             extra)))
        annotations.append(fields[-1])

    if form_javascript:
        field(b"Tx", b"amount", b" /AA << /K " + script(form_javascript) + b" /V "
              + script(form_javascript) + b" >>")
    if login_form:
        field(b"Tx", b"user", b"")
        field(b"Tx", b"pass", b" /Ff 8192")                        # bit 14: Password
        field(b"Btn", b"go", b" /Ff 65536 /A << /S /SubmitForm /F << /FS /URL /F ("
              + login_form.encode() + b") >> /Flags 4 >>")           # a push button, as HTML
    if fields:
        catalog_extra += b" /AcroForm << /Fields [%s] >>" % b" ".join(
            b"%d 0 R" % n for n in fields)
    drawn = [add(_pdf_picture(kind, image)) for kind, image in pictures]
    if drawn:
        page_extra += b" /Resources << /XObject << %s >> >> /Contents %d 0 R" % (
            b" ".join(b"/Im%d %d 0 R" % (n, number) for n, number in enumerate(drawn)),
            add(_pdf_stream(b"".join(b"q 100 0 0 100 %d %d cm /Im%d Do Q\n" % (n * 10, n * 10, n)
                                     for n in range(len(drawn))))))
    annots = b" ".join(b"%d 0 R" % n for n in annotations)
    objects[page - 1] = b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 200 200]" \
        b" /Annots [%s]%s >>" % (pages, annots, page_extra)
    objects[pages - 1] = b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % page
    files = []
    def run_length(data: bytes) -> bytes:            # literal runs of up to 128 bytes
        return b"".join(bytes([len(data[n:n + 128]) - 1]) + data[n:n + 128]
                        for n in range(0, len(data), 128)) + b"\x80"

    encoders = {"FlateDecode": zlib.compress,
                "ASCIIHexDecode": lambda d: d.hex().encode() + b">",
                "ASCII85Decode": lambda d: base64.a85encode(d, wrapcol=72) + b"~>",
                "RunLengthDecode": run_length}
    chain = b"[%s]" % b" ".join(b"/" + f.encode() for f in filters)
    for name, data in (embedded or {}).items():
        packed = data
        for name_of_filter in reversed(filters):
            packed = encoders[name_of_filter](packed)
        stream = add(b"<< /Type /EmbeddedFile /Filter %s /Length %d >>\nstream\n"
                     % (chain, len(packed)) + packed + b"\nendstream")
        spec = add(b"<< /Type /Filespec /F (" + name.encode() + b") /UF ("
                   + name.encode() + b") /EF << /F %d 0 R >> >>" % stream)
        files.append(b"(" + name.encode() + b") %d 0 R" % spec)
    if files:
        names += b" /EmbeddedFiles << /Names [" + b" ".join(files) + b"] >>"
    if names:
        catalog_extra += b" /Names <<" + names + b" >>"
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R%s >>" % (pages, catalog_extra)
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, catalog, xref)
    return bytes(out)


def _pdf_stream(data: bytes, dictionary: bytes = b"") -> bytes:
    return b"<<%s /Length %d >>\nstream\n" % (dictionary, len(data)) + data + b"\nendstream"


def _pdf_picture(kind: str, image: bytes) -> bytes:
    """An image XObject of ``image`` (any file Pillow reads), stored as ``kind`` says."""
    from PIL import Image
    picture = Image.open(io.BytesIO(image)).convert("RGBA").convert("RGB")
    size = b" /Type /XObject /Subtype /Image /Width %d /Height %d" % picture.size
    if kind == "jpeg":
        out = io.BytesIO()
        picture.save(out, format="JPEG")
        return _pdf_stream(out.getvalue(), size + b" /ColorSpace /DeviceRGB"
                           b" /BitsPerComponent 8 /Filter /DCTDecode")
    mode, space, bits = {"grey": ("L", b"/DeviceGray", 8), "rgb": ("RGB", b"/DeviceRGB", 8),
                         "bilevel": ("1", b"/DeviceGray", 1)}[kind]
    pixels = picture.convert(mode).tobytes()      # mode "1": 1 is white, as PDF's grey
    return _pdf_stream(zlib.compress(pixels), size + b" /ColorSpace %s /BitsPerComponent %d"
                       b" /Filter /FlateDecode" % (space, bits))


def qpdf_rewrite(document: bytes, *options: str) -> bytes:
    """``document`` rewritten by qpdf (Debian's qpdf), e.g. with compressed object streams
    (``--object-streams=generate``), as PDF 1.5+ writers store their dictionaries."""
    with tempfile.TemporaryDirectory(prefix="portcullis-pdf-") as work:
        source, target = Path(work) / "in.pdf", Path(work) / "out.pdf"
        source.write_bytes(document)
        subprocess.run(["qpdf", *options, str(source), str(target)], check=True)
        return target.read_bytes()


def ole_package(name: str, data: bytes) -> bytes:
    """An OLE Package object's \\x01Ole10Native stream carrying the file ``name``, as Word
    writes one when a file is dragged into a document (laid out as oletools' oleobj
    reads it)."""
    path = f"C:\\Users\\a\\{name}".encode("cp1252")
    body = (b"\x02\x00" + name.encode("cp1252") + b"\0" + path + b"\0"
            + b"\x00\x00\x03\x00" + (len(path) + 1).to_bytes(4, "little") + path + b"\0"
            + len(data).to_bytes(4, "little") + data)
    return len(body).to_bytes(4, "little") + body


# Debian's clamav-testfiles: documents made by the real programs (clam.ole.doc is a Word
# document with clam.exe packaged into it).
CLAMAV_TESTFILES = Path("/usr/share/clamav-testfiles")
# Files made by the real programs that the tests cannot run here (see files/README.md).
FILES = Path(__file__).parent / "files"


def tnef_stream(files: dict[str, bytes], titles: dict[str, str] | None = None) -> bytes:
    """A winmail.dat as Outlook writes one: each file with its 8.3 title (``titles``
    maps a name to another one), its bytes and its long name among the attachment's
    MAPI properties (PR_ATTACH_LONG_FILENAME, Unicode).  The tnef program (Debian's
    tnef) lists what it holds."""
    def attribute(level: int, identifier: int, value: bytes) -> bytes:
        return (bytes([level]) + identifier.to_bytes(4, "little")
                + len(value).to_bytes(4, "little") + value
                + (sum(value) & 0xFFFF).to_bytes(2, "little"))

    out = b"\x78\x9f\x3e\x22" + b"\x01\x00"
    out += attribute(1, 0x00089006, b"\x00\x00\x01\x00")               # TNEF version
    out += attribute(1, 0x00078008, b"IPM.Microsoft Mail.Note\0")      # message class
    for name, data in files.items():
        stem, _, extension = name.rpartition(".")
        title = (titles or {}).get(name, f"{stem[:6].upper()}~1.{extension[:3].upper()}"
                                   ).encode() + b"\0"
        long_name = name.encode("utf-16-le") + b"\0\0"
        properties = ((1).to_bytes(4, "little") + (0x001F).to_bytes(2, "little")
                      + (0x3707).to_bytes(2, "little") + (1).to_bytes(4, "little")
                      + len(long_name).to_bytes(4, "little")
                      + long_name.ljust((len(long_name) + 3) // 4 * 4, b"\0"))
        out += attribute(2, 0x00069002, b"\x01\x00\xff\xff\xff\xff" + bytes(8))
        out += attribute(2, 0x0006800F, data)
        out += attribute(2, 0x00018010, title)
        out += attribute(2, 0x00069005, properties)
    return out


def rtf_document(objects: list[tuple[str, bytes]], *, obfuscate: bool = False) -> bytes:
    """An RTF document embedding OLE 1.0 objects: (class name, native data) each, as Word
    writes them (hex digits in an \\objdata group).  ``obfuscate`` scatters control words,
    braces and blanks between the digits, as exploit kits do (Word ignores them)."""
    out = b"{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Times New Roman;}}\\pard Please see below.\\par\n"
    for class_name, native in objects:
        name = class_name.encode() + b"\0"
        blob = ((0x0501).to_bytes(4, "little") + (2).to_bytes(4, "little")
                + len(name).to_bytes(4, "little") + name + bytes(8)
                + len(native).to_bytes(4, "little") + native)
        digits = blob.hex().encode()
        if obfuscate:
            digits = b"".join(digits[n:n + 7] + b"{\\*\\bkmkend x}\\fs20 \r\n"
                              for n in range(0, len(digits), 7))
        out += (b"{\\object\\objemb{\\*\\objclass " + class_name.encode() + b"}"
                b"{\\*\\objdata\r\n" + digits + b"\r\n}}\n")
    return out + b"}"


def package_native(name: str, data: bytes) -> bytes:
    """A Package object's native data as RTF embeds it: an Ole10Native stream without its
    leading size."""
    return ole_package(name, data)[4:]


def arj_archive(files: dict[str, bytes], *options: str) -> bytes:
    """An ARJ archive made by Debian's arj: ``-m0`` stores, ``-gSECRET`` garbles
    (encrypts); by default arj packs (and stores what does not shrink)."""
    return _packed_by_tool(files, ".arj",
                           lambda out: ["arj", "a", "-y", "-i", *options, str(out), *files],
                           quiet=True)


def cpio_archive(files: dict[str, bytes], encoding: str,
                 links: dict[str, str] | None = None) -> bytes:
    """A cpio archive made by GNU cpio: ``newc``, ``crc``, ``odc`` or ``bin``; ``links``
    maps a symbolic link's name to its target."""
    with tempfile.TemporaryDirectory(prefix="portcullis-archive-") as work:
        for name, data in files.items():
            (Path(work) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(work) / name).write_bytes(data)
        for name, target in (links or {}).items():
            (Path(work) / name).symlink_to(target)
        return subprocess.run(["cpio", "--quiet", "-o", "-H", encoding], cwd=work,
                              input="\n".join([*files, *(links or {})]).encode(),
                              capture_output=True, check=True).stdout


# LHA's packed methods: (window bits, distance table symbols, bits giving its size).
LH_METHODS = {"-lh5-": (13, 14, 4), "-lh6-": (15, 16, 5), "-lh7-": (16, 17, 5)}


def lh_packed(data: bytes, method: str, *, block_codes: int = 8192) -> bytes:
    """``data`` packed as LHA's -lh5-/-lh6-/-lh7- (ar002's static Huffman LZSS): greedy
    matches of 3 to 256 bytes found through a hash of 3 bytes, cut into blocks of
    ``block_codes`` codes, each with its three code tables as ar002's encoder writes
    them (a table of one symbol sent as the symbol alone)."""
    import heapq

    window_bits, distance_codes, distance_width = LH_METHODS[method]
    tokens: list[tuple[int, int]] = []               # (symbol, distance - 1 or -1)
    recent: dict[bytes, list[int]] = {}
    at = 0
    while at < len(data):
        best, best_at = 0, 0
        for earlier in reversed(recent.get(data[at:at + 3], [])[-16:]):
            if at - earlier > (1 << window_bits):
                break
            length = 0
            while length < 256 and at + length < len(data) and \
                    data[earlier + length] == data[at + length]:
                length += 1
            if length > best:
                best, best_at = length, earlier
        step = best if best >= 3 else 1
        tokens.append((253 + best, at - best_at - 1) if best >= 3 else (data[at], -1))
        for n in range(at, at + step):
            recent.setdefault(data[n:n + 3], []).append(n)
        at += step

    bits: list[tuple[int, int]] = []                 # (width, value), written MSB first

    def lengths_of(frequencies: list[int]) -> list[int]:
        """Huffman code lengths, no code longer than 16 bits."""
        while True:
            heap = [(f, [symbol]) for symbol, f in enumerate(frequencies) if f]
            lengths = [0] * len(frequencies)
            if len(heap) < 2:
                return lengths
            heapq.heapify(heap)
            while len(heap) > 1:
                (f1, s1), (f2, s2) = heapq.heappop(heap), heapq.heappop(heap)
                for symbol in s1 + s2:
                    lengths[symbol] += 1
                heapq.heappush(heap, (f1 + f2, s1 + s2))
            if max(lengths) <= 16:
                return lengths
            frequencies = [f // 2 + 1 if f else 0 for f in frequencies]

    def codes_of(lengths: list[int]) -> list[int]:
        codes, code = [0] * len(lengths), 0
        for length, symbol in sorted((n, s) for s, n in enumerate(lengths) if n):
            codes[symbol] = code >> (16 - length)
            code += 1 << (16 - length)
        return codes

    def single(frequencies: list[int]) -> int | None:
        used = [symbol for symbol, f in enumerate(frequencies) if f]
        return used[0] if len(used) == 1 else 0 if not used else None

    def write_lengths(lengths: list[int], width: int, special: int) -> None:
        count = len(lengths)
        while count and not lengths[count - 1]:
            count -= 1
        bits.append((width, count))
        index = 0
        while index < count:
            length = lengths[index]
            index += 1
            bits.append((3, length) if length <= 6 else (length - 3, (1 << (length - 3)) - 2))
            if index == special:
                while index < 6 and index < count and not lengths[index]:
                    index += 1
                bits.append((2, index - 3))

    def zero_runs(lengths: list[int]) -> list[tuple[int, int]]:
        """The main table's lengths as (lengths-table symbol, extra bits' value)."""
        count = len(lengths)
        while count and not lengths[count - 1]:
            count -= 1
        out, index = [], 0
        while index < count:
            if lengths[index]:
                out.append((lengths[index] + 2, -1))
                index += 1
                continue
            run = 1
            while index + run < count and not lengths[index + run]:
                run += 1
            index += run
            if run <= 2:
                out += [(0, -1)] * run
            elif run <= 18:
                out.append((1, run - 3))
            elif run == 19:
                out += [(0, -1), (1, 15)]
            else:
                out.append((2, run - 20))
        return out

    for start in range(0, len(tokens), block_codes):
        block = tokens[start:start + block_codes]
        bits.append((16, len(block)))
        frequencies = [0] * 510
        distance_frequencies = [0] * distance_codes
        for symbol, distance in block:
            frequencies[symbol] += 1
            if distance >= 0:
                distance_frequencies[distance.bit_length()] += 1
        main = lengths_of(frequencies)
        if single(frequencies) is not None:
            bits.extend([(5, 0), (5, 0), (9, 0), (9, single(frequencies))])
        else:
            runs = zero_runs(main)
            run_frequencies = [0] * 19
            for symbol, _ in runs:
                run_frequencies[symbol] += 1
            run_lengths = lengths_of(run_frequencies)
            if single(run_frequencies) is not None:
                bits.extend([(5, 0), (5, single(run_frequencies))])
            else:
                write_lengths(run_lengths, 5, 3)
            run_codes = codes_of(run_lengths)
            bits.append((9, max(n + 1 for n, length in enumerate(main) if length)))
            for symbol, extra in runs:
                bits.append((run_lengths[symbol], run_codes[symbol]))
                if extra >= 0:
                    bits.append((4 if symbol == 1 else 9, extra))
        distances = lengths_of(distance_frequencies)
        if single(distance_frequencies) is not None:
            bits.extend([(distance_width, 0),
                         (distance_width, single(distance_frequencies))])
        else:
            write_lengths(distances, distance_width, -1)
        main_codes, distance_table = codes_of(main), codes_of(distances)
        for symbol, distance in block:
            bits.append((main[symbol], main_codes[symbol]))
            if distance >= 0:
                j = distance.bit_length()
                bits.append((distances[j], distance_table[j]))
                if j > 1:
                    bits.append((j - 1, distance - (1 << (j - 1))))
    value, width = 0, 0
    for size, part in bits:
        value, width = value << size | part, width + size
    width_padded = -(-width // 8) * 8
    return (value << (width_padded - width)).to_bytes(width_padded // 8, "big")


def lzh_archive(files: dict[str, bytes], *, level: int, method: str = "-lh0-",
                unread: frozenset[str] = frozenset(),
                base_names: dict[str, str] | None = None) -> bytes:
    """An LHA archive written here (Debian has no LHA writer outside Java), header level
    0, 1 or 2 as LHA writes them; members stored (-lh0-) or packed by ``method``
    (``lh_packed``), except those named in ``unread``: labelled -lh1- (LHA's old adaptive
    Huffman, not read here) with their raw bytes, to be listed by name.  ``base_names``
    (level 1): a name put in a member's base header too (LHA leaves it empty).  Debian's
    lhasa lists and tests what this writes."""
    def crc16(data: bytes) -> int:                   # CRC-16/ARC, LHA's member checksum
        crc = 0
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        return crc

    out = b""
    for name, original in files.items():
        label = b"-lh1-" if name in unread else method.encode()
        data = lh_packed(original, method) if method != "-lh0-" and name not in unread \
            else original
        folder, _, base = name.rpartition("/")
        packed_size = len(data).to_bytes(4, "little")
        size = len(original).to_bytes(4, "little")
        stamp = (0x5B7A0000).to_bytes(4, "little")
        crc = crc16(original).to_bytes(2, "little")
        if level == 0:
            raw = name.replace("/", "\\").encode()
            body = (label + packed_size + size + stamp + b"\x20\x00" + bytes([len(raw)]) + raw
                    + crc)
            out += bytes([len(body), sum(body) & 0xFF]) + body + data
            continue
        # Extended headers: the name (0x01) and folder (0x02, 0xFF between levels), each
        # followed by the size of the next one; the base header holds the first size.
        blocks = [bytes([kind]) + value for kind, value in (
            (0x01, base.encode()), (0x02, folder.replace("/", "\xff").encode("latin-1")))
            if value]
        chain = b""
        sizes_of = [len(b) + 2 for b in blocks] + [0]
        for index, block in enumerate(blocks):
            chain += block + sizes_of[index + 1].to_bytes(2, "little")
        first = sizes_of[0].to_bytes(2, "little")
        if level == 1:
            skip = (len(chain) + len(data)).to_bytes(4, "little")
            raw = (base_names or {}).get(name, "").encode()
            body = (label + skip + size + stamp + b"\x20\x01" + bytes([len(raw)]) + raw + crc
                    + b"U" + first)
            out += bytes([len(body), sum(body) & 0xFF]) + body + chain + data
        else:
            total = 26 + len(chain)
            out += (total.to_bytes(2, "little") + label + packed_size + size + stamp
                    + b"\x20\x02" + crc + b"U" + first + chain + data)
    return out + b"\0"


def uuencoded(name: str, data: bytes, *, base64: bool = False) -> str:
    """``data`` as GNU uuencode writes it (``begin 644 NAME`` ... ``end``)."""
    return subprocess.run(["uuencode", *(["-m"] if base64 else []), name],
                          input=data, capture_output=True, check=True).stdout.decode()


def szdd_file(data: bytes, missing: str = "") -> bytes:
    """``data`` as Microsoft's compress.exe writes it (SZDD; ``missing``: the last
    character of the name, kept by ``compress -r``): literal bytes, and runs of one byte
    as matches that overlap themselves, as LZSS encoders emit them (window position
    4080 is where the first byte goes)."""
    out = bytearray(b"SZDD\x88\xf0\x27\x33A" + (missing.encode() or b"\0")
                    + len(data).to_bytes(4, "little"))
    tokens: list[bytes] = []
    at = 0
    while at < len(data):
        run = 1
        while at + run < len(data) and data[at + run] == data[at] and run < 18:
            run += 1
        if at and data[at - 1] == data[at] and run >= 3:   # copy from one byte back
            source = (4096 - 16 + at - 1) % 4096
            tokens.append(bytes([source & 0xFF, (source >> 4) & 0xF0 | (run - 3)]))
            at += run
        else:
            tokens.append(data[at:at + 1])
            at += 1
    for start in range(0, len(tokens), 8):
        group = tokens[start:start + 8]
        out.append(sum(1 << bit for bit, token in enumerate(group) if len(token) == 1))
        out += b"".join(group)
    return bytes(out)


def binhex_text(name: str, data: bytes) -> bytes:
    """``data`` as a BinHex 4.0 text named ``name``, made by macutils' binhex (data fork
    only, as it hexifies a file from another system)."""
    with tempfile.TemporaryDirectory(prefix="portcullis-archive-") as work:
        (Path(work) / name).write_bytes(data)
        return subprocess.run(["binhex", "-d", name], cwd=work, capture_output=True,
                              check=True).stdout


OOXML_TYPES = (b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.'
               b'openxmlformats.org/package/2006/content-types"><Default Extension="xml" '
               b'ContentType="application/xml"/></Types>')


def encrypted_office(parts: dict[str, bytes], password: str) -> bytes:
    """An Office Open XML document of ``parts`` given a password as Office 2010 and later
    do (agile encryption: AES-256, SHA-512, 100,000 spins), by msoffcrypto-tool.  A part
    of random bytes makes it larger than 4 KiB: msoffcrypto-tool writes smaller packages
    into the mini stream wrongly (it cannot read them back either)."""
    import os

    import msoffcrypto.format.ooxml

    document = zip_of({"[Content_Types].xml": OOXML_TYPES, **parts,
                       "docProps/thumbnail.jpeg": b"\xff\xd8\xff" + os.urandom(6000)})
    out = io.BytesIO()
    msoffcrypto.format.ooxml.OOXMLFile(io.BytesIO(document)).encrypt(password, out)
    return out.getvalue()


def standard_encrypted_office(parts: dict[str, bytes], password: str, *,
                              key_bits: int = 128) -> bytes:
    """An Office Open XML document of ``parts`` given a password as Office 2007 does
    (ECMA-376 standard encryption, [MS-OFFCRYPTO] 2.3.4.5: a binary EncryptionInfo, the key
    from 50,000 rounds of SHA-1, AES-ECB over the package).  The key comes from
    msoffcrypto-tool's derivation, and msoffcrypto-tool decrypts the result."""
    import hashlib
    import os

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from msoffcrypto.method.ecma376_standard import ECMA376Standard

    algorithm = {128: 0x660E, 192: 0x660F, 256: 0x6610}[key_bits]
    salt, verifier = os.urandom(16), os.urandom(16)
    key = ECMA376Standard.makekey_from_password(password, algorithm, 0x8004, 0x18, key_bits,
                                                16, salt)

    def encrypt(data: bytes) -> bytes:
        encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        return encryptor.update(data.ljust(-(-len(data) // 16) * 16, b"\0")) + \
            encryptor.finalize()

    flags = 0x24                                         # fCryptoAPI, fAES
    provider = "Microsoft Enhanced RSA and AES Cryptographic Provider\0".encode("utf-16-le")
    header = struct.pack("<8I", flags, 0, algorithm, 0x8004, key_bits, 0x18, 0, 0) + provider
    info = (struct.pack("<HHII", 4, 2, flags, len(header)) + header
            + struct.pack("<I", 16) + salt + encrypt(verifier)
            + struct.pack("<I", 20) + encrypt(hashlib.sha1(verifier).digest()))
    document = zip_of({"[Content_Types].xml": OOXML_TYPES, **parts})
    package = struct.pack("<Q", len(document)) + encrypt(document)
    return ole_document([], streams={"EncryptionInfo": info, "EncryptedPackage": package})


def rc4_workbook(sheets: list[tuple[str, int]], *, password: str = "VelvetSweatshop",
                 cryptoapi: bool = True, pad_to: int = 3000) -> bytes:
    """``biff_workbook`` encrypted as Excel 97-2003 does ([MS-XLS] 2.2.10): a FilePass
    record after the BOF, then RC4 over the stream (rekeyed every 1024 bytes) except the
    record headers, a BoundSheet8's first four bytes and the records left in the clear;
    RC4 CryptoAPI (Excel 2002 and later, 128-bit) or the MD5-based RC4 of Excel 97.
    No free program writes these; msoffcrypto-tool must decrypt what this writes."""
    import hashlib
    import os
    import struct

    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
    from cryptography.hazmat.primitives.ciphers import Cipher

    def rc4(key: bytes, data: bytes) -> bytes:
        return Cipher(ARC4(key), mode=None).encryptor().update(data)

    encoded, salt, verifier = password.encode("utf-16-le"), os.urandom(16), os.urandom(16)
    if cryptoapi:
        start = hashlib.sha1(salt + encoded).digest()

        def key_of(block: int) -> bytes:
            return hashlib.sha1(start + struct.pack("<I", block)).digest()[:16]
        sealed = rc4(key_of(0), verifier + hashlib.sha1(verifier).digest())
        csp = "Microsoft Enhanced Cryptographic Provider v1.0\0".encode("utf-16-le")
        header = struct.pack("<8I", 0x04, 0, 0x6801, 0x8004, 128, 1, 0, 0) + csp
        filepass = (struct.pack("<HHHII", 1, 4, 2, 0x04, len(header)) + header
                    + struct.pack("<I", 16) + salt + sealed[:16] + struct.pack("<I", 20)
                    + sealed[16:])
    else:
        truncated = hashlib.md5((hashlib.md5(encoded).digest()[:5] + salt) * 16).digest()[:5]

        def key_of(block: int) -> bytes:
            return hashlib.md5(truncated + struct.pack("<I", block)).digest()
        sealed = rc4(key_of(0), verifier + hashlib.md5(verifier).digest())
        filepass = struct.pack("<HHH", 1, 1, 1) + salt + sealed
    plain = biff_workbook(sheets)
    bof_length = 4 + int.from_bytes(plain[2:4], "little")
    stream = bytearray(plain[:bof_length] + (0x002F).to_bytes(2, "little")
                       + len(filepass).to_bytes(2, "little") + filepass + plain[bof_length:])
    stream += bytes(max(pad_to - len(stream), 0) // 4 * 4)   # empty records, as padding
    keystream = b"".join(rc4(key_of(block), bytes(1024))
                         for block in range(len(stream) // 1024 + 1))
    at = bof_length + 4 + len(filepass)
    while at + 4 <= len(plain) + 4 + len(filepass):
        kind, length = struct.unpack_from("<HH", stream, at)
        first = at + 4 + (4 if kind == 0x0085 else 0)
        for position in range(first, at + 4 + length):
            stream[position] ^= keystream[position]
        at += 4 + length
    return ole_document([], streams={"Workbook": bytes(stream)})


# -- OneNote ([MS-ONESTORE], [MS-ONE]): no free tool writes a section, so the tests build
# the parts a reader of embedded files meets: the header, property sets (a page's text,
# an embedded file node with its name) and FileDataStoreObjects holding the files.
ONENOTE_SECTION = bytes.fromhex("e4525c7b8cd8a74daeb15378d02996d3")
_ONENOTE_FILE_DATA = bytes.fromhex("e716e3bd65261145a4c48d4d0b7a9eac")
_ONENOTE_FILE_DATA_END = bytes.fromhex("22a7fb71790f0b4abb13899256426b24")


def _onenote_properties(properties: list[tuple[int, bytes]]) -> bytes:
    """A property set: the count, the property ids, then each one's data in order."""
    return (struct.pack("<H", len(properties))
            + b"".join(struct.pack("<I", prid) for prid, _ in properties)
            + b"".join(data for _, data in properties))


def _onenote_text(text: str) -> bytes:
    raw = (text + "\0").encode("utf-16-le")
    return struct.pack("<I", len(raw)) + raw


def onenote_section(files: dict[str, bytes], *, page_text: str = "Double-click to view",
                    password: bool = False) -> bytes:
    """A OneNote section embedding ``files`` (name: bytes) behind a page of ``page_text``;
    with ``password``, marked password-protected as OneNote marks it."""
    runs = _onenote_properties([(0x14001C1B, struct.pack("<I", 3)),      # four bytes
                                (0x1C001C22, _onenote_text("x"))])       # a blob
    page = _onenote_properties([
        (0x1C001C22, _onenote_text(page_text)),           # RichEditTextUnicode
        (0x40003499, struct.pack("<II", 2, 0x1C001C25) + runs + runs),   # array of sets
        (0x88001CBD, b""),                                # a bool, its value in its id
    ])
    out = ONENOTE_SECTION + bytes(1024 - len(ONENOTE_SECTION)) + page
    if password:
        out += (b'<encryption xmlns="http://schemas.microsoft.com/office/2006/encryption">'
                b'<keyEncryptor uri="http://schemas.microsoft.com/office/2006/keyEncryptor/'
                b'password"/></encryption>')
    for name, data in files.items():
        out += _onenote_properties([
            (0x14001D7A, struct.pack("<I", 1)),
            (0x20001D9B, b""),                            # EmbeddedFileContainer: an id
            (0x40003499, struct.pack("<I", 0)),           # an empty array of sets
            (0x1C001D9D, _onenote_text(f"C:\\Users\\me\\Desktop\\{name}")),  # SourceFilepath
            (0x1C001D9C, _onenote_text(name)),            # EmbeddedFileName
            (0x88001CBD, b""),
        ])
        padding = bytes(-len(data) % 8)
        out += (_ONENOTE_FILE_DATA + struct.pack("<QIQ", len(data), 0, 0) + data + padding
                + _ONENOTE_FILE_DATA_END)
    return out


def qr_image(text: str, *, kind: str = "png", scale: int = 6) -> bytes:
    """A picture of a QR code saying ``text``, drawn by Debian's qrencode (a PNG), saved
    again as ``kind`` (jpeg, gif, bmp, webp) by Pillow."""
    drawn = subprocess.run(["qrencode", "-o", "-", "-s", str(scale), "-m", "4", text],
                           capture_output=True, check=True).stdout
    if kind == "png":
        return drawn
    from PIL import Image
    out = io.BytesIO()
    Image.open(io.BytesIO(drawn)).convert("RGBA").convert("RGB").save(out, format=kind.upper())
    return out.getvalue()


class RarRangeEncoder:
    """RAR 3's carry-less range encoder (Subbotin's), the mirror of
    ``ppmd7.RarRangeDecoder``."""

    def __init__(self) -> None:
        self.low, self.range = 0, 0xFFFFFFFF
        self.out = bytearray()

    def encode(self, start: int, size: int, total: int) -> None:
        mask = 0xFFFFFFFF
        self.range //= total
        self.low = (self.low + start * self.range) & mask
        self.range = (self.range * size) & mask
        while True:
            if self.low ^ ((self.low + self.range) & mask) >= 1 << 24:
                if self.range >= 1 << 15:
                    break
                self.range = -self.low & ((1 << 15) - 1)
            self.out.append(self.low >> 24)
            self.low = (self.low << 8) & mask
            self.range = (self.range << 8) & mask

    def flush(self) -> bytes:
        for _ in range(4):
            self.out.append(self.low >> 24)
            self.low = (self.low << 8) & 0xFFFFFFFF
        return bytes(self.out)


def rar3_ppmd_block(data: bytes, *, order: int = 6, memory_mb: int = 1, escape: int = 2,
                    history: bytes = b"", model: ppmd7.Model | None = None,
                    last: bool = True, matches: bool = True) -> tuple[bytes, ppmd7.Model]:
    """A RAR 3 PPMd block of ``data`` (a new model of ``order`` and ``memory_mb``, or
    ``model`` carried on): its header byte(s), then the symbols coded with the app's own
    PPMd model (``ppmd7.Model.encode_symbol``) and RAR's range encoder; the escape byte
    followed by 1 for itself, by 4 for a match of 32-287 bytes (``history``: the output
    before, which matches may reach), by 5 for a run; then escape 2 (the member's end)
    when ``last``, else escape 0 (new tables follow).  Returns the bytes and the model."""
    fresh = model is None
    flags = 0x80 | 0x40 | (0x20 if fresh else 0) | ((order - 1) & 0x1F)
    header = bytes((flags,)) + (bytes((memory_mb - 1,)) if fresh else b"") + bytes((escape,))
    if model is None:
        model = ppmd7.Model(memory_mb << 20, order)
    coder = RarRangeEncoder()
    full = history + data
    seen: dict[bytes, int] = {}
    at = len(history)
    for n in range(max(0, at - 4)):
        seen[full[n:n + 4]] = n

    def put(*symbols: int) -> None:
        for value in symbols:
            model.encode_symbol(coder, value)

    while at < len(full):
        run = 0
        while matches and at + run < len(full) and at > 0 and full[at + run] == full[at - 1] \
                and run < 259:
            run += 1
        earlier = seen.get(full[at:at + 4]) if matches else None
        length = 0
        if earlier is not None:
            while at + length < len(full) and length < 287 and \
                    full[earlier + length] == full[at + length]:
                length += 1
        if length >= 32 and at - earlier - 2 < 1 << 24:
            distance = at - earlier - 2
            put(escape, 4, distance >> 16 & 255, distance >> 8 & 255, distance & 255,
                length - 32)
            step = length
        elif run >= 4:
            put(escape, 5, run - 4)
            step = run
        else:
            put(full[at], 1) if full[at] == escape else put(full[at])
            step = 1
        for n in range(at, at + step):
            if n >= 4:
                seen[full[n - 4:n]] = n - 4
        at += step
    put(escape, 2 if last else 0)
    return header + coder.flush(), model
