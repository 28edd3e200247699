"""Read the scan log: packets the ruleset sends to an nflog group (``log group N``).

A small NETLINK_NETFILTER client (no ulogd, no libnetfilter_log): bind to the group, ask for
the first bytes of each packet, and decode source, destination, protocol and port.  It works
in any network namespace (``log prefix`` to the kernel log does not) and needs
CAP_NET_ADMIN there.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

from portcullis.firewall.nft import FirewallError

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
NFULA_CFG_CMD = 1
NFULA_CFG_MODE = 2
NFULNL_CFG_CMD_BIND = 1
NFULNL_COPY_PACKET = 2
NFULA_IFINDEX_INDEV = 4
NFULA_PAYLOAD = 9
NFULA_PREFIX = 10
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NLMSG_DONE = 3
NFNETLINK_V0 = 0
COPY_BYTES = 128            # headers are all the scan log needs
_PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp"}
_TCP_FLAGS = "FSRPAU"
# IPv6 extension headers a probe may put before its transport header (hop-by-hop options,
# routing, destination options: length in 8-octet units after the first 8; AH: in 4-octet
# units after the first 8).  nftables finds the transport behind them; so must the log.
_IPV6_OPTIONS_HEADERS = (0, 43, 60)
_IPV6_AH = 51


@dataclass(frozen=True)
class ScanAttempt:
    """One logged packet."""

    time: float
    prefix: str
    source: str
    destination: str
    protocol: str
    port: int | None
    tcp_flags: str
    interface: str

    def line(self) -> str:
        """The log line: ``scan attempt from SRC to tcp/PORT [flags S] on eth0``."""
        target = f"{self.protocol}/{self.port}" if self.port is not None else self.protocol
        flags = f" flags {self.tcp_flags or '-'}" if self.protocol == "tcp" else ""
        on = f" on {self.interface}" if self.interface else ""
        return f"scan attempt from {self.source} to {self.destination} {target}{flags}{on}"


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _config_message(group: int, attrs: bytes, seq: int) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, NFNETLINK_V0, socket.htons(group)) + attrs
    kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
    return struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK, seq,
                       0) + body


class ScanLogReader:
    """A bound nflog group; iterate to receive ``ScanAttempt``s."""

    def __init__(self, group: int) -> None:
        self.group = group
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as exc:
            raise FirewallError(f"cannot open a netfilter netlink socket: {exc}") from None
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sock.bind((0, 0))
            self._request(_attr(NFULA_CFG_CMD, struct.pack("=B", NFULNL_CFG_CMD_BIND)), 1)
            mode = struct.pack(">IBB", COPY_BYTES, NFULNL_COPY_PACKET, 0)
            self._request(_attr(NFULA_CFG_MODE, mode), 2)
        except BaseException:
            self.sock.close()
            raise

    def _request(self, attrs: bytes, seq: int) -> None:
        self.sock.send(_config_message(self.group, attrs, seq))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data = self.sock.recv(65536)
            for kind, _flags, msg_seq, payload in _messages(data):
                if kind == NLMSG_ERROR and msg_seq == seq:
                    (code,) = struct.unpack_from("=i", payload)
                    if code:
                        hint = ("needs CAP_NET_ADMIN" if -code == errno.EPERM
                                else "is another process bound to it?")
                        raise FirewallError(f"cannot bind nflog group {self.group}: "
                                            f"{errno.errorcode.get(-code, -code)} ({hint})")
                    return
        raise FirewallError(f"no answer binding nflog group {self.group}")

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self) -> list[ScanAttempt]:
        """Block until the kernel sends log messages; return the attempts they hold."""
        try:
            data = self.sock.recv(1 << 17)
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:   # we fell behind: messages were lost, go on
                return []
            raise
        now = time.time()
        found = []
        for kind, _flags, _seq, payload in _messages(data):
            if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
                attempt = _decode(payload, now)
                if attempt is not None:
                    found.append(attempt)
        return found

    def __iter__(self) -> Iterator[ScanAttempt]:
        while True:
            yield from self.receive()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ScanLogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    offset = 0
    while offset + 16 <= len(data):
        length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            return
        yield kind, flags, seq, data[offset + 16:offset + length]
        offset += (length + 3) & ~3


def _attributes(payload: bytes) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    offset = 0
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        attrs[kind & 0x7FFF] = payload[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return attrs


def _ipv6_transport(packet: bytes) -> tuple[int, int]:
    """Offset and protocol of an IPv6 packet's transport header, past extension headers
    (each at least 8 bytes, so the walk ends within the copied bytes)."""
    header, proto = 40, packet[6]
    while len(packet) >= header + 2 and proto in (*_IPV6_OPTIONS_HEADERS, _IPV6_AH):
        units = packet[header + 1]
        length = (units + 2) * 4 if proto == _IPV6_AH else (units + 1) * 8
        proto = packet[header]
        header += length
    return header, proto


def _decode(payload: bytes, now: float) -> ScanAttempt | None:
    if len(payload) < 4:
        return None
    family = payload[0]
    attrs = _attributes(payload[4:])
    packet = attrs.get(NFULA_PAYLOAD, b"")
    prefix = attrs.get(NFULA_PREFIX, b"").rstrip(b"\0").decode(errors="replace").strip()
    interface = ""
    if NFULA_IFINDEX_INDEV in attrs:
        (index,) = struct.unpack(">I", attrs[NFULA_IFINDEX_INDEV][:4])
        try:
            interface = socket.if_indextoname(index)
        except OSError:
            interface = str(index)
    if family == socket.AF_INET and len(packet) >= 20:
        header = (packet[0] & 0x0F) * 4
        proto = packet[9]
        source, destination = packet[12:16], packet[16:20]
    elif family == socket.AF_INET6 and len(packet) >= 40:
        header, proto = _ipv6_transport(packet)
        source, destination = packet[8:24], packet[24:40]
    else:
        return None
    port = None
    flags = ""
    if proto in (6, 17) and len(packet) >= header + 4:
        port = struct.unpack_from(">H", packet, header + 2)[0]
    if proto == 6 and len(packet) >= header + 14:
        bits = packet[header + 13]
        flags = "".join(name for bit, name in enumerate(_TCP_FLAGS) if bits & (1 << bit))
    return ScanAttempt(time=now, prefix=prefix,
                       source=str(ipaddress.ip_address(source)),
                       destination=str(ipaddress.ip_address(destination)),
                       protocol=_PROTOCOLS.get(proto, str(proto)), port=port,
                       tcp_flags=flags, interface=interface)
