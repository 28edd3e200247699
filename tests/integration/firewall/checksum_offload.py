"""Turn a network device's transmit checksum offload off or on (``ethtool -K DEV tx``, which
this machine lacks), run inside a namespace: ``python checksum_offload.py DEV off|on``.

Off, the sender's kernel computes every checksum itself and the packets reach the peer as
from a network card without receive checksum offload: their checksum not yet verified.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct
import sys

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17          # linux/ethtool.h: set transmit checksum offload


def main(device: str, state: str) -> None:
    value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, state == "on"))
    request = struct.pack("16sP", device.encode(), ctypes.addressof(value)) + bytes(16)
    with socket.socket() as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
