"""The scan log's decoding of logged packets, which are the attacker's own bytes."""

from __future__ import annotations

import socket
import struct

import pytest

from portcullis.firewall.scanlog import NFULA_PAYLOAD, NFULA_PREFIX, _attr, _decode

pytestmark = pytest.mark.firewall

SOURCE, DESTINATION = "2001:db8:66::66", "2001:db8:a::10"


def logged(ip6_packet: bytes) -> bytes:
    """An nflog packet message as the kernel sends it for this IPv6 packet."""
    return (bytes([socket.AF_INET6, 0, 0, 7]) + _attr(NFULA_PREFIX, b"portcullis-scan \0")
            + _attr(NFULA_PAYLOAD, ip6_packet))


def ipv6(next_header: int, body: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(body), next_header, 64,
                       socket.inet_pton(socket.AF_INET6, SOURCE),
                       socket.inet_pton(socket.AF_INET6, DESTINATION)) + body


SYN = struct.pack("!HHIIBBHHH", 40000, 3389, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
DEST_OPTIONS = bytes([6, 0, 1, 4, 0, 0, 0, 0])                        # next: TCP, PadN
HOP_BY_HOP = bytes([60, 1]) + bytes([1, 12]) + bytes(12)              # 16 bytes, next: dest
AH = bytes([60, 4, 0, 0]) + bytes(20)                                  # 24 bytes, next: dest


@pytest.mark.parametrize("headers", [
    (6, b""),
    (60, DEST_OPTIONS),
    (0, HOP_BY_HOP + DEST_OPTIONS),
    (51, AH + DEST_OPTIONS),
])
def test_ipv6_probe_behind_extension_headers_is_logged_with_its_port(headers):
    # A destination options header hid the port: logged as "... 2001:db8:a::10 60".
    next_header, extensions = headers
    attempt = _decode(logged(ipv6(next_header, extensions + SYN)), 0.0)
    assert attempt is not None
    assert attempt.line() == f"scan attempt from {SOURCE} to {DESTINATION} tcp/3389 flags S"


def test_extension_headers_running_past_the_copied_bytes_give_no_port():
    attempt = _decode(logged(ipv6(60, bytes([60, 200]) + bytes(6))), 0.0)
    assert attempt is not None and attempt.port is None
