"""What the property tests (hypothesis) and the fuzzer (atheris) feed hostile bytes to.

Each target takes arbitrary bytes and raises AssertionError when the code under test
breaks a promise (an exception escaping, unbounded work, a malformed SMTP reply, an
internal error where a clear answer was due).  The same functions serve both tools.

- ``smtp_session``: the gateway's SMTP protocol (aiosmtpd + GatewaySMTP + the handler)
  driven in-process over a fake transport, next hop an in-process aiosmtpd sink;
- ``mime_walk``: ``portcullis.mime`` (parse, walk, headers, part text, file names) and the
  structure check;
- ``hygiene``: line-ending normalisation and smuggling detection;
- ``archive_roundtrip``: the archive's compressed bodies and its search.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import tempfile
from pathlib import Path
from types import SimpleNamespace

# aiosmtpd and the gateway log every oddity; thousands of hostile sessions need no log.
for _name in ("mail.log", "portcullis"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

REPLY_LINE = re.compile(rb"^[2-5]\d\d[ -][^\r\n]*$")
INTERNAL_ERROR = b"451 4.3.0"


# -- SMTP ------------------------------------------------------------------------------------

class FakeTransport(asyncio.Transport):
    """Collects what the server writes; closing tells the protocol, as a socket would."""

    def __init__(self, protocol: asyncio.Protocol, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.protocol = protocol
        self.loop = loop
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("192.0.2.7", 40025),
                "sockname": ("127.0.0.1", 25)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False


class InProcessGateway:
    """One gateway handler with its own state directory and an aiosmtpd sink as the
    internal host of example.com, on one event loop reused for every session."""

    def __init__(self) -> None:
        from aiosmtpd.smtp import SMTP

        from portcullis import config as configuration
        from portcullis.directory import domains
        from portcullis.services import Services
        from portcullis.smtp.handler import GatewayHandler
        from portcullis.smtp.server import SessionLimits

        class Sink:
            async def handle_DATA(self, server: SMTP, session: object,
                                  envelope: object) -> str:
                return "250 2.0.0 Ok"

        self.loop = asyncio.new_event_loop()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sink_port = sock.getsockname()[1]
        self.sink = self.loop.run_until_complete(self.loop.create_server(
            lambda: SMTP(Sink(), hostname="sink.test"), sock=sock))
        self.state = Path(tempfile.mkdtemp(prefix="portcullis-fuzz-"))
        self.config = configuration.parse({
            "smtp": {"listen": "127.0.0.1:2525", "hostname": "gw.test", "timeout": 30.0,
                     "max_message_size": 1024 * 1024},
            "web": {"listen": "127.0.0.1:8080"},
            "store": {"dir": str(self.state)},
            "delivery": {"connect_timeout": 5.0, "command_timeout": 5.0,
                         "data_timeout": 10.0}})
        self.services = Services.open(self.config)
        self.services.store.migrate()
        domains.add_domain(self.services.store, "example.com", f"127.0.0.1:{sink_port}")
        self.handler = GatewayHandler(self.services)
        self.limits = SessionLimits(10_000, 10_000)

    def session(self, data: bytes, timeout: float = 30.0) -> bytes:
        """Feed the bytes, then end any DATA and QUIT; return everything answered."""
        from portcullis.smtp.server import GatewaySMTP

        transport: FakeTransport | None = None

        async def drive() -> None:
            nonlocal transport
            # Built inside the running loop: aiosmtpd binds to the loop current at creation.
            protocol = GatewaySMTP(self.handler, self.limits, self.config.smtp)
            transport = FakeTransport(protocol, self.loop)
            protocol.connection_made(transport)
            for start in range(0, len(data), 4096):       # as a socket delivers it
                protocol.data_received(data[start:start + 4096])
                await asyncio.sleep(0)
            protocol.data_received(b"\r\n.\r\nQUIT\r\n")
            while not transport.closed:
                await asyncio.sleep(0.001)

        try:
            self.loop.run_until_complete(asyncio.wait_for(drive(), timeout))
        except TimeoutError:
            answered = bytes(transport.out) if transport else b""
            raise AssertionError(f"session hung; answered so far: {answered!r}") from None
        finally:
            if transport is not None and not transport.closed:
                transport.close()
            # Let connection_lost and the session's clean-up run.
            for _ in range(5):
                self.loop.run_until_complete(asyncio.sleep(0))
        assert transport is not None
        return bytes(transport.out)

    def close(self) -> None:
        self.sink.close()
        with contextlib.suppress(Exception):
            self.services.close()
        self.loop.close()


_gateway: InProcessGateway | None = None


def smtp_session(data: bytes) -> None:
    """Any bytes from a client get well-formed replies, never an internal error or a hang,
    and the session always ends."""
    global _gateway
    if _gateway is None:
        _gateway = InProcessGateway()
    answer = _gateway.session(data)
    lines = answer.split(b"\r\n")
    assert lines[-1] == b"", answer[-200:]
    for line in lines[:-1]:
        assert REPLY_LINE.match(line), (line, answer[-500:])
    assert INTERNAL_ERROR not in answer, answer[-500:]
    assert answer.startswith(b"220 "), answer[:200]


# -- MIME, hygiene, archive ------------------------------------------------------------------

def mime_walk(data: bytes) -> None:
    """portcullis.mime accepts anything and bounds its work."""
    from portcullis import mime

    message = mime.parse_message(data)
    parts = list(mime.walk(message))
    assert 1 <= len(parts) <= mime.MAX_PARTS
    assert all(depth <= mime.MAX_DEPTH for depth, _ in parts)
    for name in ("Subject", "From", "To", "Content-Type"):
        assert isinstance(mime.decoded_header(message, name), str)
    for _, part in parts:
        if not part.is_multipart():
            assert isinstance(mime.part_text(part, limit=100_000), str)
        assert isinstance(mime.filename(part), str)
    _structure_check(data)


_structure_loop: asyncio.AbstractEventLoop | None = None


def _structure_check(data: bytes) -> None:
    global _structure_loop
    from portcullis.checks.base import Context
    from portcullis.checks.structure import MessageStructure

    if _structure_loop is None:
        _structure_loop = asyncio.new_event_loop()
    check = MessageStructure(None)  # type: ignore[arg-type]  # needs no services
    symbols = _structure_loop.run_until_complete(check.check(Context("192.0.2.7",
                                                                     content=data)))
    assert all(s.score >= 0 for s in symbols)


def hygiene(data: bytes) -> None:
    """Normalised content has CRLF line endings only, and never gains a lone-dot line."""
    from portcullis.smtp import hygiene as rules

    try:
        out = rules.normalise_line_endings(data)
    except rules.SmugglingAttempt:
        assert rules.has_bare_newline(data)
        return
    assert not rules.has_bare_newline(out)
    if not rules.has_bare_newline(data):
        assert out is data
    dot_lines = re.compile(rb"(?:^|\r\n)\.(?=\r\n)")
    assert len(dot_lines.findall(out)) <= len(dot_lines.findall(data))


_archive = None


def archive_roundtrip(data: bytes) -> None:
    """What is archived comes back byte for byte; searching for any text is safe."""
    global _archive
    from portcullis.archive import Archive, new_message_id
    from portcullis.store import open_store

    if _archive is None:
        state = Path(tempfile.mkdtemp(prefix="portcullis-fuzz-archive-"))
        store = open_store(state, "")
        store.migrate()
        _archive = Archive(store, state / "archive")
    message_id = new_message_id()
    path = _archive.write_body(message_id, data)
    assert _archive.read_body(SimpleNamespace(id=message_id, path=path)) == data
    text = data[:200].decode("utf-8", errors="replace")
    assert isinstance(_archive.search(subject=text, sender=text, recipient=text, limit=5), list)


def attachments(data: bytes) -> None:
    """The attachment inventory (antivirus.archives, file types) takes any message and any
    attachment bytes (a zip, rar, 7z, gzip or tar, told by content) within its limits, never
    raising."""
    import base64
    import io
    import zipfile

    from portcullis import mime
    from portcullis.antivirus import archives, filetypes

    names = ("a.zip", "a.rar", "a.7z", "a.tar.gz", "a.gz", "a.tar", "a.pdf.exe")
    messages = [data] + [
        # A password in the text, for the encrypted seeds (theirs is "hello").
        (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
         b"Content-Type: text/plain\r\n\r\nPassword: hello\r\n--b\r\n"
         b"Content-Type: application/octet-stream; name=\"" + name.encode() + b"\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data)
         + b"--b--\r\n") for name in names]
    # The bytes as a file inside a real zip too, so mutations reach the member parsers.
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("inner.zip", data)
        archive.writestr("doc.pdf", data[:100])
    messages.append(b"Content-Type: application/zip; name=\"outer.zip\"\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\n"
                    + base64.encodebytes(packed.getvalue()))
    limits = archives.DEFAULT_LIMITS
    for content in messages:
        found = archives.inventory(mime.parse_message(content))
        assert len(found.files) <= limits.max_files + 1
        assert found.unpacked <= limits.max_unpacked + limits.max_member
        for item in found.files:
            assert isinstance(item.shown, str)
    filetypes.detect(data[:65536], [data[:100].decode("latin-1")])
    for name in (data[:200].decode("utf-8", "replace"), data[:200].decode("latin-1")):
        filetypes.deceptive(name)
        filetypes.extensions(name)


TARGETS = {"smtp": smtp_session, "mime": mime_walk, "hygiene": hygiene,
           "archive": archive_roundtrip, "attachments": attachments}
